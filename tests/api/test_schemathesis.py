"""Every JSON endpoint fuzzed from the gateway's own OpenAPI document (schemathesis).

The document is the one each running gateway serves at /api/openapi.json: the first test checks
that it is ``app.api.openapi.DOCUMENT``, which is loaded here at collection time (schemathesis
4.32's lazy, fixture-loaded schemas break on pytest 9.2). Schemathesis generates requests from
it, valid ones and, in its negative phase, ones that break the schema, then checks each answer:
no 5xx, a status the document lists, the listed content type and headers, a body that matches
the response schema. With an admin's token every operation is reachable; without a token every
answer must be a 401. Example counts are small and fixed (derandomized), so that the file runs
in about a minute; ``TUSGATE_FUZZ_EXAMPLES`` raises them (docs/RELIABILITY.md).
"""

from __future__ import annotations

import os

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import unsupported_method

from app.api.openapi import DOCUMENT
from tests.download.client import ADMIN
from tests.gateways import Target

EXAMPLES = int(os.environ.get("TUSGATE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests on every run: a failure here is reproducible
)
# Left out: "an undocumented method answers 405". DELETE /api/files/availability is also
# DELETE /api/files/{sha256} with a malformed checksum to the router, and answers what every
# malformed checksum gets there, 404 "file not found".
EXCLUDED = [unsupported_method]


schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_document_fuzzed_is_the_one_served(target: Target, http: httpx.Client) -> None:
    served = http.get(f"{target.url}/api/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@schema.parametrize()
@FUZZ
def test_every_operation_answers_as_documented(case: schemathesis.Case, target: Target) -> None:
    # A real token where schemathesis put one of its own; none where it left it out on purpose
    # (a negative case: the answer must then be 401).
    has_token = "Authorization" in (case.headers or {})
    token = {"Authorization": f"Bearer {target.token('fuzzer', ADMIN)}"} if has_token else {}
    case.call_and_validate(
        base_url=target.url,
        headers=token,
        excluded_checks=EXCLUDED,
        timeout=30,
    )


@schema.parametrize()
@FUZZ
def test_without_a_token_every_operation_is_401(case: schemathesis.Case, target: Target) -> None:
    if case.query and "token" in case.query:
        case.query.pop("token")  # a signed link's token is its own credential (403 if bad)
    response = case.call(base_url=target.url, timeout=30)
    assert response.status_code == 401, (case.method, case.formatted_path, response.text)
    assert response.text.startswith("unauthorized: ")
    headers = {name.lower(): values for name, values in response.headers.items()}
    assert headers["www-authenticate"][0].startswith('Bearer error="invalid_token"')
