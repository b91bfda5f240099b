"""HEAD: the offset to resume from, never cached, never waiting on a PATCH."""

from __future__ import annotations

import httpx

from tests.gateways import Target, new_user
from tests.tus.client import b64, create, head, patch


def test_head_reports_offset_length_metadata_uncached(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = create(http, target, user, 10, Upload_Metadata=f"filename {b64('a.txt')}")
    assert patch(http, target, user, url, 0, b"1234").status_code == 204
    response = head(http, target, user, url)
    assert response.status_code == 200
    assert response.headers["upload-offset"] == "4"
    assert response.headers["upload-length"] == "10"
    assert response.headers["upload-metadata"] == f"filename {b64('a.txt')}"
    assert response.headers["cache-control"] == "no-store"
    assert "upload-expires" in response.headers
    assert response.content == b""


def test_deferred_length_is_reported_as_such(target: Target, user: str, http: httpx.Client) -> None:
    url = create(http, target, user, None)
    response = head(http, target, user, url)
    assert response.headers["upload-defer-length"] == "1"
    assert "upload-length" not in response.headers


def test_someone_elses_upload_does_not_exist(target: Target, user: str, http: httpx.Client) -> None:
    url = create(http, target, user, 10)
    assert head(http, target, new_user(), url).status_code == 404
    assert head(http, target, user, target.files_url + "x" * 32).status_code == 404


def test_errors_on_head_have_no_body(target: Target, user: str, http: httpx.Client) -> None:
    response = head(http, target, user, target.files_url + "missing")
    assert response.status_code == 404
    assert response.content == b""
