"""Signed download links: made for readers only, bound to one file and one user, short-lived,
never interchangeable with bearer tokens, and as good as the owner's right at download time."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.download.client import ADMIN, audit, fetch, store
from tests.gateways import StartTarget, Target, new_user


def _link(
    http: httpx.Client, target: Target, user: str, checksum: str, roles: tuple[str, ...] = ()
) -> httpx.Response:
    url = f"{target.url}/api/files/{checksum}/link"
    return http.post(url, headers=target.headers(user, roles=roles))


def _url(http: httpx.Client, target: Target, user: str, checksum: str) -> str:
    response = _link(http, target, user, checksum)
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url


def _with_token(target: Target, checksum: str, token: str) -> str:
    return f"{target.url}/download/{checksum}?token={token}"


def _tampered(token: str) -> str:
    """The same token claiming another user, its signature left as it was."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_a_link_downloads_without_a_bearer_token(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = os.urandom(2000)
    checksum = store(http, target, user, body, name="shared.bin")
    made = _link(http, target, user, checksum)
    assert made.status_code == 200
    assert made.headers["cache-control"] == "no-store"
    link = made.json()
    assert link["url"].startswith(f"{target.url}/download/{checksum}?token=")
    expires_at = datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00"))
    assert abs(expires_at - datetime.now(UTC) - timedelta(hours=1)) < timedelta(seconds=30)
    response = http.get(link["url"])
    assert response.status_code == 200, response.text
    assert response.content == body
    assert 'filename="shared.bin"' in response.headers["content-disposition"]
    ranged = http.get(link["url"], headers={"Range": "bytes=0-9"})
    assert (ranged.status_code, ranged.content) == (206, body[:10])
    downloads = audit(http, target, sha256=checksum, action="file.downloaded")
    assert [event["detail"]["link"] for event in downloads] == [True, True]  # type: ignore[index]
    linked = audit(http, target, sha256=checksum, action="file.linked")
    assert [event["actor"] for event in linked] == [user]


def test_only_readers_get_links_and_an_admins_link_works(
    target: Target, user: str, http: httpx.Client
) -> None:
    checksum = store(http, target, user, os.urandom(100))
    assert _link(http, target, new_user(), checksum).status_code == 404
    assert _link(http, target, user, "f" * 64).status_code == 404
    assert _link(http, target, user, "not-a-checksum").status_code == 404
    admin = _link(http, target, new_user(), checksum, roles=ADMIN)
    assert admin.status_code == 200
    assert http.get(admin.json()["url"]).status_code == 200


def test_an_expired_link_is_refused(target: Target, user: str, http: httpx.Client) -> None:
    checksum = store(http, target, user, os.urandom(100))
    token, _ = target.issuer.issue_link(user, checksum, ttl_seconds=-120)  # past the leeway
    response = http.get(_with_token(target, checksum, token))
    assert response.status_code == 403
    assert "expired" in response.json()["error"]


def test_a_tampered_link_is_refused(target: Target, user: str, http: httpx.Client) -> None:
    checksum = store(http, target, user, os.urandom(100))
    url = _url(http, target, user, checksum)
    base, _, token = url.partition("?token=")
    response = http.get(f"{base}?token={_tampered(token)}")
    assert response.status_code == 403
    assert response.json()["error"].startswith("invalid download link")
    assert http.get(f"{base}?token={token[:-4]}").status_code == 403


def test_a_link_is_for_one_file_only(target: Target, user: str, http: httpx.Client) -> None:
    first = store(http, target, user, os.urandom(100))
    second = store(http, target, user, os.urandom(100))
    token = _url(http, target, user, first).partition("?token=")[2]
    response = http.get(_with_token(target, second, token))
    assert response.status_code == 403
    assert response.json() == {"error": "invalid download link: the link is for another file"}


def test_a_link_token_is_not_a_bearer_token(target: Target, user: str, http: httpx.Client) -> None:
    checksum = store(http, target, user, os.urandom(100))
    token = _url(http, target, user, checksum).partition("?token=")[2]
    bearer = {"Authorization": f"Bearer {token}"}
    for url in (f"{target.url}/api/files", f"{target.url}/download/{checksum}"):
        response = http.get(url, headers=bearer)
        assert response.status_code == 401, url
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # Only downloads take a link in the query string.
    assert http.get(f"{target.url}/api/files?token={token}").status_code == 401


def test_a_bearer_token_is_not_a_link_token(target: Target, user: str, http: httpx.Client) -> None:
    checksum = store(http, target, user, os.urandom(100))
    response = http.get(_with_token(target, checksum, target.token(user)))
    assert response.status_code == 403
    assert "aud" in response.json()["error"]


def test_a_link_stops_working_once_the_owner_deleted_the_file(
    target: Target, user: str, http: httpx.Client
) -> None:
    checksum = store(http, target, user, os.urandom(100))
    url = _url(http, target, user, checksum)
    assert http.get(url).status_code == 200
    deleted = http.delete(f"{target.url}/api/files/{checksum}", headers=target.headers(user))
    assert deleted.status_code == 204
    assert http.get(url).status_code == 404
    assert fetch(http, target, user, checksum).status_code == 404


@pytest.mark.parametrize("ttl", [60, 86400])
def test_the_link_lifetime_is_a_setting(
    start: StartTarget, user: str, http: httpx.Client, ttl: int
) -> None:
    target = start("embedded", TUSGATE_LINK_TTL_SECONDS=str(ttl))
    checksum = store(http, target, user, os.urandom(100))
    link = _link(http, target, user, checksum).json()
    expires_at = datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00"))
    assert abs(expires_at - datetime.now(UTC) - timedelta(seconds=ttl)) < timedelta(seconds=30)
    assert http.get(link["url"]).status_code == 200
