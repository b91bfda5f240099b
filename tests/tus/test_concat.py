"""The concatenation extension: partial uploads joined into a final one by the store."""

from __future__ import annotations

import os

import httpx
import redis

from tests.gateways import StartTarget, Target, new_user
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
    # Found by tests/e2e/test_crash_points.py: the file was catalogued with size 0, so its
    # owner's quota never counted it.
    [listed] = http.get(f"{target.url}/api/files", headers=target.headers(user)).json()["files"]
    assert listed["size"] == sum(map(len, pieces))
    me = http.get(f"{target.url}/api/me", headers=target.headers(user)).json()
    assert me["usage"]["stored_bytes"] == sum(map(len, pieces))


def test_partial_uploads_are_not_files(target: Target, user: str, http: httpx.Client) -> None:
    url = _partial(http, target, user, b"piece")
    assert upload_info(http, target, user, url)["sha256"] is None
    listed = http.get(f"{target.url}/api/files", headers=target.headers(user)).json()["files"]
    assert listed == []


def test_foreign_ended_or_plain_uploads_are_refused_as_partials(
    target: Target, user: str, http: httpx.Client
) -> None:
    done = _partial(http, target, user, b"done")
    foreign = _partial(http, target, new_user(), b"theirs")
    response = _final(http, target, user, [done, foreign])
    assert response.status_code == 400
    assert "does not exist" in response.text
    plain = create(http, target, user, 0)
    assert _final(http, target, user, [done, plain]).status_code == 400
    ended = create(http, target, user, 10, Upload_Concat="partial")
    assert http.delete(ended, headers=target.headers(user)).status_code == 204
    response = _final(http, target, user, [done, ended])
    assert response.status_code == 400
    assert "has ended" in response.text


def test_final_upload_waits_for_unfinished_partials(
    target: Target, user: str, http: httpx.Client
) -> None:
    """concatenation-unfinished: the final upload is assembled when its last partial finishes."""
    options = http.options(target.files_url, headers=target.headers(user))
    assert "concatenation-unfinished" in options.headers["tus-extension"].split(",")
    pieces = [os.urandom(5 * 1024 * 1024 + 3), os.urandom(4096)]
    first = _partial(http, target, user, pieces[0])
    second = create(http, target, user, None, Upload_Concat="partial")  # length still unknown
    response = _final(http, target, user, [first, second])
    assert response.status_code == 201, response.text
    final = response.headers["location"]
    waiting = head(http, target, user, final)
    assert waiting.status_code == 200
    assert "upload-offset" not in waiting.headers  # undefined until assembled
    assert "upload-length" not in waiting.headers
    assert upload_info(http, target, user, final)["state"] == "receiving"
    answer = patch(http, target, user, second, 0, pieces[1], Upload_Length=str(len(pieces[1])))
    assert answer.status_code == 204
    info = upload_info(http, target, user, final)  # assembled by the PATCH that finished it
    assert info["state"] == "done"
    assert info["sha256"] == sha256(b"".join(pieces))
    described = head(http, target, user, final)
    assert described.headers["upload-offset"] == described.headers["upload-length"]
    assert described.headers["upload-length"] == str(sum(map(len, pieces)))


def test_an_assembly_cut_short_is_retried_by_a_head(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    """Another instance seems to be assembling (it holds the final upload's lock in Redis) when
    the last partial finishes; once it is gone, a HEAD on the final upload assembles it."""
    target = start("services")
    pieces = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    first = _partial(http, target, user, pieces[0])
    second = create(http, target, user, len(pieces[1]), Upload_Concat="partial")
    final = _final(http, target, user, [first, second]).headers["location"]
    lock = f"tusgate:lock:{final.rsplit('/', 1)[1]}"
    with redis.Redis.from_url(target.env["TUSGATE_REDIS_URL"]) as client:
        assert client.set(lock, "someone else", nx=True, px=60_000)
        assert patch(http, target, user, second, 0, pieces[1]).status_code == 204
        assert "upload-offset" not in head(http, target, user, final).headers  # still waiting
        client.delete(lock)
    assembled = head(http, target, user, final)
    assert assembled.headers["upload-offset"] == str(sum(map(len, pieces)))
    assert upload_info(http, target, user, final)["sha256"] == sha256(b"".join(pieces))
