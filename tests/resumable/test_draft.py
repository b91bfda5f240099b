"""The resumable-upload draft (interop version 8), written from the draft's examples, raw HTTP."""

from __future__ import annotations

import hashlib
import os

import httpx

from tests.download.client import fetch
from tests.gateways import TUS, Target, new_user
from tests.resumable.client import (
    append,
    create,
    digest,
    endpoint,
    headers,
    interrupted_append,
    state,
)
from tests.tus.client import my_files, sha256, wait_for

PROBLEMS = "https://iana.org/assignments/http-problem-types#"


def test_options_announce_the_limits(target: Target, user: str, http: httpx.Client) -> None:
    response = http.options(endpoint(target), headers=headers(target, user))
    assert response.status_code == 204
    limits = dict(item.split("=") for item in response.headers["upload-limit"].split(", "))
    assert limits == {"max-size": str(1024**3), "min-size": "0"}


def test_whole_representation_in_the_creation_request(
    target: Target, user: str, http: httpx.Client
) -> None:
    """Example A of upload creation: everything in one request, the file as the answer."""
    body = os.urandom(3 * 1024 * 1024 + 17)
    response = create(
        http,
        target,
        user,
        body,
        Upload_Complete="?1",
        Upload_Length=str(len(body)),
        Content_Type="image/jpeg",
        Content_Disposition="inline; filename=\"file name.jpg\"; filename*=UTF-8''f%C3%BCr.jpg",
    )
    assert response.status_code == 200, response.text
    assert response.headers["upload-complete"] == "?1"
    assert response.headers["upload-draft-interop-version"] == "8"
    assert response.headers["repr-digest"] == digest("sha-256", hashlib.sha256(body).digest())
    result = response.json()
    assert result["sha256"] == sha256(body)
    assert result["size"] == len(body)
    [stored] = my_files(http, target, user)
    assert (stored["name"], stored["content_type"]) == ("für.jpg", "image/jpeg")
    assert fetch(http, target, user, sha256(body)).content == body
    described = state(http, target, user, response.headers["location"])
    assert described.headers["upload-complete"] == "?1"
    assert described.headers["upload-offset"] == str(len(body))


def test_upload_as_a_series_of_parts(target: Target, user: str, http: httpx.Client) -> None:
    """Example 2: creation with the first part, appends, the last append completes."""
    parts = [os.urandom(2 * 1024 * 1024), os.urandom(1024 * 1024 + 5), os.urandom(999)]
    total = sum(map(len, parts))
    created = create(http, target, user, parts[0], Upload_Complete="?0", Upload_Length=str(total))
    assert created.status_code == 201, created.text
    assert created.headers["upload-complete"] == "?0"
    assert created.headers["upload-offset"] == str(len(parts[0]))
    assert "max-size=" in created.headers["upload-limit"]
    url = created.headers["location"]
    described = state(http, target, user, url)
    assert described.status_code == 204
    assert described.headers["upload-offset"] == str(len(parts[0]))
    assert described.headers["upload-length"] == str(total)
    assert described.headers["upload-complete"] == "?0"
    assert described.headers["cache-control"] == "no-store"
    assert "max-age=" in described.headers["upload-limit"]
    middle = append(http, target, user, url, len(parts[0]), parts[1], complete=False)
    assert middle.status_code == 204
    assert middle.headers["upload-complete"] == "?0"
    last = append(http, target, user, url, total - len(parts[2]), parts[2], complete=True)
    assert last.status_code == 200, last.text
    assert last.headers["upload-complete"] == "?1"
    assert last.json()["sha256"] == sha256(b"".join(parts))
    replayed = append(http, target, user, url, total, b"", complete=True)
    assert replayed.status_code == 200  # the lost final answer, given again
    assert replayed.json()["sha256"] == sha256(b"".join(parts))


def test_careful_creation_of_a_stream_of_unknown_length(
    target: Target, user: str, http: httpx.Client
) -> None:
    """An empty creation request, then appends; the length is learnt from the last one."""
    created = create(http, target, user, Upload_Complete="?0")
    assert created.status_code == 201
    url = created.headers["location"]
    assert "upload-length" not in state(http, target, user, url).headers
    first = os.urandom(1024 * 1024)
    assert append(http, target, user, url, 0, first, complete=False).status_code == 204
    rest = os.urandom(300_000)
    chunks = iter([rest[:100_000], rest[100_000:]])  # chunked transfer: no Content-Length
    last = append(http, target, user, url, len(first), chunks, complete=True)  # type: ignore[arg-type]
    assert last.status_code == 200, last.text
    assert last.json()["size"] == len(first) + len(rest)
    assert last.json()["sha256"] == sha256(first + rest)


def test_resumption_after_an_interrupted_append(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = os.urandom(4 * 1024 * 1024)
    created = create(http, target, user, Upload_Complete="?0", Upload_Length=str(len(body)))
    url = created.headers["location"]
    sent = 1024 * 1024 + 3
    interrupted_append(target, user, url, 0, len(body), body[:sent])
    wait_for(
        lambda: state(http, target, user, url).headers["upload-offset"] == str(sent),
        "the interrupted append's bytes to be committed",
    )
    last = append(http, target, user, url, sent, body[sent:], complete=True)
    assert last.status_code == 200, last.text
    assert last.json()["sha256"] == sha256(body)


def test_offset_mismatch_is_the_registered_problem(
    target: Target, user: str, http: httpx.Client
) -> None:
    created = create(http, target, user, b"abc", Upload_Complete="?0", Upload_Length="10")
    url = created.headers["location"]
    response = append(http, target, user, url, 7, b"xyz", complete=False)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["upload-offset"] == "3"
    assert response.headers["upload-complete"] == "?0"
    problem = response.json()
    assert problem["type"] == PROBLEMS + "mismatching-upload-offset"
    assert (problem["expected-offset"], problem["provided-offset"]) == (3, 7)


def test_inconsistent_lengths_are_the_registered_problem(
    target: Target, user: str, http: httpx.Client
) -> None:
    response = create(http, target, user, b"12345", Upload_Complete="?1", Upload_Length="10")
    assert response.status_code == 400
    assert response.json()["type"] == PROBLEMS + "inconsistent-upload-length"
    url = create(http, target, user, b"12345", Upload_Complete="?0", Upload_Length="10").headers[
        "location"
    ]
    changed = append(http, target, user, url, 5, b"678", complete=False, Upload_Length="8")
    assert changed.status_code == 400
    assert changed.json()["type"] == PROBLEMS + "inconsistent-upload-length"
    short = append(http, target, user, url, 5, b"678", complete=True)  # ends at 8, not 10
    assert short.status_code == 400
    assert short.json()["type"] == PROBLEMS + "inconsistent-upload-length"
    assert state(http, target, user, url).headers["upload-offset"] == "5"  # nothing appended


def test_malformed_requests_are_refused_with_a_reason(
    target: Target, user: str, http: httpx.Client
) -> None:
    assert create(http, target, user, b"x").status_code == 400  # no Upload-Complete
    assert create(http, target, user, b"x", Upload_Complete="yes").status_code == 400
    old = http.post(
        endpoint(target),
        headers={**headers(target, user), "Upload-Draft-Interop-Version": "6"},
        content=b"x",
    )
    assert old.status_code == 400
    assert "unsupported Upload-Draft-Interop-Version" in old.json()["title"]
    assert old.headers["upload-draft-interop-version"] == "8"
    url = create(http, target, user, Upload_Complete="?0", Upload_Length="10").headers["location"]
    tus_type = {"Content_Type": "application/offset+octet-stream"}
    wrong_type = append(http, target, user, url, 0, b"x", complete=False, **tus_type)
    assert wrong_type.status_code == 415
    no_offset = http.patch(
        url,
        headers=headers(
            target, user, Upload_Complete="?0", Content_Type="application/partial-upload"
        ),
        content=b"x",
    )
    assert no_offset.status_code == 400
    too_big = create(http, target, user, Upload_Complete="?0", Upload_Length=str(2 * 1024**3))
    assert too_big.status_code == 413
    assert "max-size=" in too_big.headers["upload-limit"]


def test_content_digest_guards_each_request(target: Target, user: str, http: httpx.Client) -> None:
    url = create(http, target, user, Upload_Complete="?0", Upload_Length="8").headers["location"]
    wrong = digest("sha-256", hashlib.sha256(b"other").digest())
    refused = append(http, target, user, url, 0, b"abcd", complete=False, Content_Digest=wrong)
    assert refused.status_code == 400
    assert state(http, target, user, url).headers["upload-offset"] == "0"
    right = digest("sha-512", hashlib.sha512(b"abcd").digest())
    accepted = append(http, target, user, url, 0, b"abcd", complete=False, Content_Digest=right)
    assert accepted.status_code == 204
    assert accepted.headers["upload-offset"] == "4"


def test_repr_digest_must_match_the_whole_upload(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = os.urandom(100_000)
    announced = digest("sha-256", hashlib.sha256(b"something else").digest())
    created = create(http, target, user, body[:50_000], Upload_Complete="?0", Repr_Digest=announced)
    url = created.headers["location"]
    refused = append(http, target, user, url, 50_000, body[50_000:], complete=True)
    assert refused.status_code == 400
    assert refused.headers["upload-complete"] == "?1"  # all arrived; it is the content that fails
    assert state(http, target, user, url).status_code == 410
    assert my_files(http, target, user) == []
    good = digest("sha-256", hashlib.sha256(body).digest())
    accepted = create(http, target, user, body, Upload_Complete="?1", Repr_Digest=good)
    assert accepted.status_code == 200
    assert accepted.headers["repr-digest"] == good


def test_cancellation_ends_the_upload(target: Target, user: str, http: httpx.Client) -> None:
    url = create(http, target, user, b"abc", Upload_Complete="?0").headers["location"]
    assert http.delete(url, headers=headers(target, user)).status_code == 204
    assert state(http, target, user, url).status_code == 410


def test_one_upload_two_protocols_one_owner(target: Target, user: str, http: httpx.Client) -> None:
    """The upload resource is an ordinary upload: tus sees it, strangers do not."""
    url = create(http, target, user, b"abcd", Upload_Complete="?0", Upload_Length="6").headers[
        "location"
    ]
    upload_id = url.rsplit("/", 1)[1]
    tus_url = f"{target.files_url}{upload_id}"
    tus = http.head(tus_url, headers={**TUS, **headers(target, user)})
    assert (tus.headers["upload-offset"], tus.headers["upload-length"]) == ("4", "6")
    stranger = new_user()
    assert state(http, target, stranger, url).status_code == 404
    assert append(http, target, stranger, url, 4, b"ef", complete=True).status_code == 404
    finished = http.patch(
        tus_url,
        headers={
            **TUS,
            **headers(target, user),
            "Upload-Offset": "4",
            "Content-Type": "application/offset+octet-stream",
        },
        content=b"ef",
    )
    assert finished.status_code == 204
    wait_for(lambda: my_files(http, target, user) != [], "the file to be registered")
    assert state(http, target, user, url).headers["upload-complete"] == "?1"
    assert fetch(http, target, user, sha256(b"abcdef")).content == b"abcdef"
