"""Every endpoint, tried by everyone who should not get in: no token, an expired one, a forged
one, a download link's token used as a bearer token, and another user with a valid token.

The first four get 401 everywhere. The other user gets exactly what a resource that does not
exist gets (so nothing says it exists), or 403 on the admin endpoints — and the owner's upload
and file are as they were afterwards.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.auth.local import LocalIssuer
from tests.download.client import store
from tests.gateways import Target, new_user
from tests.tus.client import OCTETS, create, offset

UNKNOWN_SHA = "f" * 64
UNKNOWN_UPLOAD = "A" * 32


TUS = (("Tus-Resumable", "1.0.0"),)
TUS_PATCH = (*TUS, ("Upload-Offset", "0"), ("Content-Type", OCTETS))
DRAFT_PATCH = (
    ("Upload-Offset", "0"),
    ("Upload-Complete", "?0"),
    ("Content-Type", "application/partial-upload"),
)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: object = None
    headers: tuple[tuple[str, str], ...] = ()


def _calls(upload_id: str, sha256: str, owner: str) -> list[Call]:
    return [
        Call("HEAD", f"/files/{upload_id}", headers=TUS),
        Call("PATCH", f"/files/{upload_id}", headers=TUS_PATCH),
        Call("DELETE", f"/files/{upload_id}", headers=TUS),
        Call("HEAD", f"/resumable/{upload_id}"),
        Call("GET", f"/resumable/{upload_id}"),
        Call("PATCH", f"/resumable/{upload_id}", headers=DRAFT_PATCH),
        Call("DELETE", f"/resumable/{upload_id}"),
        Call("GET", f"/api/uploads/{upload_id}"),
        Call("GET", f"/download/{sha256}"),
        Call("HEAD", f"/download/{sha256}"),
        Call("POST", f"/api/files/{sha256}/link"),
        Call("DELETE", f"/api/files/{sha256}"),
        Call("POST", "/api/files/availability", {"checksums": [sha256]}),
        Call("GET", "/api/files"),
        Call("GET", "/api/me"),
        Call("GET", f"/api/quotas/{owner}"),
        Call("PUT", f"/api/quotas/{owner}", {"max_bytes": 1}),
        Call("GET", "/api/audit"),
        Call("PUT", f"/api/files/{sha256}/hold"),
        Call("DELETE", f"/api/files/{sha256}/hold"),
    ]


def _send(http: httpx.Client, target: Target, call: Call, token: str | None) -> httpx.Response:
    headers = dict(call.headers)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = b"x" if call.method == "PATCH" else None
    return http.request(
        call.method, f"{target.url}{call.path}", headers=headers, json=call.body, content=content
    )


@pytest.fixture
def victim(target: Target, http: httpx.Client, user: str) -> tuple[str, str, bytes]:
    """The owner's upload in progress (its id) and finished file (its checksum and bytes)."""
    upload_url = create(http, target, user, 10)
    body = os.urandom(5000)
    return upload_url.rsplit("/", 1)[1], store(http, target, user, body), body


def _intact(http: httpx.Client, target: Target, user: str, victim: tuple[str, str, bytes]) -> None:
    upload_id, sha256, body = victim
    assert offset(http, target, user, f"{target.files_url}{upload_id}") == 0
    response = http.get(f"{target.url}/download/{sha256}", headers=target.headers(user))
    assert (
        hashlib.sha256(response.content).hexdigest() == sha256 == hashlib.sha256(body).hexdigest()
    )


def _strangers(target: Target, owner: str, sha256: str, tmp_path: Path) -> dict[str, str | None]:
    issuer = LocalIssuer.from_file(Path(target.env["TUSGATE_LOCAL_ISSUER_KEY_FILE"]))
    forger = LocalIssuer.from_file(tmp_path / "forger.jwk")
    return {
        "no token": None,
        "expired": issuer.issue(owner, [], -3600),
        "forged": forger.issue(owner, ["admin"], 3600),
        "link as bearer": issuer.issue_link(owner, sha256, 3600)[0],
        "garbage": "not.a.token",
    }


def test_no_valid_token_gets_anything_but_401(
    target: Target, http: httpx.Client, user: str, victim: tuple[str, str, bytes], tmp_path: Path
) -> None:
    upload_id, sha256, _ = victim
    for who, token in _strangers(target, user, sha256, tmp_path).items():
        for call in _calls(upload_id, sha256, user):
            response = _send(http, target, call, token)
            assert response.status_code == 401, (who, call, response.status_code)
    _intact(http, target, user, victim)


def test_another_user_learns_nothing_and_changes_nothing(
    target: Target, http: httpx.Client, user: str, victim: tuple[str, str, bytes]
) -> None:
    upload_id, sha256, _ = victim
    other = target.token(new_user())
    theirs = _calls(upload_id, sha256, user)
    nobodys = _calls(UNKNOWN_UPLOAD, UNKNOWN_SHA, new_user())
    for call, unknown in zip(theirs, nobodys, strict=True):
        response = _send(http, target, call, other)
        assert response.status_code in (200, 403, 404, 204), (call, response.status_code)
        if (
            call.path.startswith("/api/quotas/")
            or call.path in ("/api/audit",)
            or "hold" in call.path
        ):
            assert response.status_code == 403, call
            continue
        expected = _send(http, target, unknown, other)
        assert response.status_code == expected.status_code, call
        assert response.content == expected.content or call.path == "/api/me", call
    _intact(http, target, user, victim)
