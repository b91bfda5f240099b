"""The concatenation extension: partial uploads joined into a final one by the store."""

from __future__ import annotations

import os

import httpx

from tests.gateways import Target, new_user
from tests.tus.client import b64, create, head, patch, sha256, upload_info


def _partial(http: httpx.Client, target: Target, user: str, data: bytes) -> str:
    url = create(http, target, user, len(data), Upload_Concat="partial")
    if data:
        assert patch(http, target, user, url, 0, data).status_code == 204
    return url


def _final(http: httpx.Client, target: Target, user: str, urls: list[str]) -> httpx.Response:
    headers = target.headers(
        user, Upload_Concat="final;" + " ".join(urls), Upload_Metadata=f"filename {b64('j.bin')}"
    )
    return http.post(target.files_url, headers=headers)


def test_final_upload_joins_partials_in_order(
    target: Target, user: str, http: httpx.Client
) -> None:
    pieces = [os.urandom(6 * 1024 * 1024 + 7), os.urandom(100), os.urandom(5 * 1024 * 1024)]
    urls = [_partial(http, target, user, piece) for piece in pieces]
    assert head(http, target, user, urls[0]).headers["upload-concat"] == "partial"
    response = _final(http, target, user, urls)
    assert response.status_code == 201
    final = response.headers["location"]
    info = upload_info(http, target, user, final)
    assert info["state"] == "done"
    assert info["sha256"] == sha256(b"".join(pieces))
    described = head(http, target, user, final)
    assert described.headers["upload-offset"] == str(sum(map(len, pieces)))
    assert described.headers["upload-concat"] == "final;" + " ".join(urls)
    assert patch(http, target, user, final, 0, b"x").status_code == 403


def test_partial_uploads_are_not_files(target: Target, user: str, http: httpx.Client) -> None:
    url = _partial(http, target, user, b"piece")
    assert upload_info(http, target, user, url)["sha256"] is None
    listed = http.get(f"{target.url}/api/files", headers=target.headers(user)).json()["files"]
    assert listed == []


def test_unfinished_or_foreign_partials_are_refused(
    target: Target, user: str, http: httpx.Client
) -> None:
    done = _partial(http, target, user, b"done")
    unfinished = create(http, target, user, 10, Upload_Concat="partial")
    response = _final(http, target, user, [done, unfinished])
    assert response.status_code == 400
    assert "not finished" in response.text
    foreign = _partial(http, target, new_user(), b"theirs")
    response = _final(http, target, user, [done, foreign])
    assert response.status_code == 400
    assert "does not exist" in response.text
    plain = create(http, target, user, 0)
    assert _final(http, target, user, [done, plain]).status_code == 400
