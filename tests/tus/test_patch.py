"""PATCH: appending bytes, every rejection, and what happens when connections misbehave."""

from __future__ import annotations

import email.utils
import os

import httpx
import pytest

from tests.gateways import Target, new_user
from tests.tus.client import (
    OCTETS,
    create,
    head,
    offset,
    open_patch,
    patch,
    read_response,
    sha256,
    upload_info,
    wait_for,
    writing,
)


def test_patches_append_and_complete_with_the_sha256(
    target: Target, user: str, http: httpx.Client
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    url = create(http, target, user, len(data))
    position = 0
    for size in (1, 1024 * 1024, 2 * 1024 * 1024 + 122):
        response = patch(http, target, user, url, position, data[position : position + size])
        assert response.status_code == 204, response.text
        position += size
        assert response.headers["upload-offset"] == str(position)
    assert "upload-expires" not in response.headers  # finished uploads do not expire
    info = upload_info(http, target, user, url)
    assert info["state"] == "done"
    assert info["sha256"] == sha256(data)


def test_patch_answers_upload_expires(target: Target, user: str, http: httpx.Client) -> None:
    url = create(http, target, user, 10)
    response = patch(http, target, user, url, 0, b"12345")
    assert response.status_code == 204
    assert email.utils.parsedate_to_datetime(response.headers["upload-expires"])


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"Content-Type": "application/octet-stream"}, 415, "Content-Type"),
        ({"Content-Type": None}, 415, "Content-Type"),
        ({"Upload-Offset": None}, 400, "Upload-Offset"),
        ({"Upload-Offset": "-3"}, 400, "Upload-Offset"),
        ({"Upload-Offset": "zero"}, 400, "Upload-Offset"),
        ({"Upload-Offset": "3"}, 409, "at 0"),
        ({"Upload-Length": "99"}, 400, "already set"),
        ({"Upload-Length": "x"}, 400, "Upload-Length"),
        ({"Tus-Resumable": None}, 412, "unsupported version"),
    ],
)
def test_bad_patch_requests_leave_the_upload_unchanged(
    target: Target,
    user: str,
    http: httpx.Client,
    headers: dict[str, str | None],
    status: int,
    reason: str,
) -> None:
    url = create(http, target, user, 10)
    sent = target.headers(user, Upload_Offset="0", Content_Type=OCTETS)
    for name, value in headers.items():
        sent.pop(name, None)
        if value is not None:
            sent[name] = value
    response = http.patch(url, headers=sent, content=b"abc")
    assert response.status_code == status
    assert reason in response.text
    assert offset(http, target, user, url) == 0


def test_body_past_the_length_is_413_and_stores_nothing(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = create(http, target, user, 10)
    assert patch(http, target, user, url, 0, b"x" * 11).status_code == 413

    def chunked() -> object:
        yield b"x" * 6
        yield b"y" * 6

    headers = target.headers(user, Upload_Offset="0", Content_Type=OCTETS)
    response = http.patch(url, headers=headers, content=chunked())  # no Content-Length
    assert response.status_code == 413
    assert offset(http, target, user, url) == 0


def test_someone_elses_upload_is_404(target: Target, user: str, http: httpx.Client) -> None:
    url = create(http, target, user, 10)
    assert patch(http, target, new_user(), url, 0, b"abc").status_code == 404
    assert offset(http, target, user, url) == 0


def test_a_complete_upload_accepts_an_empty_patch_only(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = create(http, target, user, 3)
    assert patch(http, target, user, url, 0, b"abc").status_code == 204
    assert patch(http, target, user, url, 3, b"").status_code == 204
    assert patch(http, target, user, url, 3, b"d").status_code == 413


def test_deferred_length_is_declared_by_a_later_patch(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = create(http, target, user, None)
    assert patch(http, target, user, url, 0, b"hello ").status_code == 204
    response = patch(http, target, user, url, 6, b"world", Upload_Length="11")
    assert response.status_code == 204
    info = upload_info(http, target, user, url)
    assert info["state"] == "done"
    assert info["sha256"] == sha256(b"hello world")
    assert head(http, target, user, url).headers["upload-length"] == "11"


def test_deferred_length_below_offset_is_rejected(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = create(http, target, user, None)
    assert patch(http, target, user, url, 0, b"hello").status_code == 204
    response = patch(http, target, user, url, 5, b"", Upload_Length="3")
    assert response.status_code == 400
    assert offset(http, target, user, url) == 5


def test_method_override_turns_a_post_into_a_patch(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = create(http, target, user, 3)
    headers = target.headers(
        user, Upload_Offset="0", Content_Type=OCTETS, X_HTTP_Method_Override="PATCH"
    )
    response = http.post(url, headers=headers, content=b"abc")
    assert response.status_code == 204
    assert response.headers["upload-offset"] == "3"


def test_bytes_before_a_disconnect_are_kept(target: Target, user: str, http: httpx.Client) -> None:
    data = os.urandom(4 * 1024 * 1024)
    url = create(http, target, user, len(data))
    sent = 3 * 1024 * 1024 + 5
    sock = open_patch(target, user, url, 0, len(data), data[:sent])
    sock.close()
    wait_for(lambda: offset(http, target, user, url) == sent, "the server to save the bytes")
    assert patch(http, target, user, url, sent, data[sent:]).status_code == 204
    assert upload_info(http, target, user, url)["sha256"] == sha256(data)


def test_a_new_patch_makes_a_stuck_one_let_go(
    target: Target, user: str, http: httpx.Client
) -> None:
    """A PATCH hanging on a dead connection is told to save and release: no 423 for minutes.

    The stuck request saves what it had read when asked (up to the 1000 bytes sent; how many
    reached it by then is up to the network), so the new PATCH either goes through or is told
    the new offset — never "locked".
    """
    data = os.urandom(2 * 1024 * 1024)
    url = create(http, target, user, len(data))
    stuck = open_patch(target, user, url, 0, len(data), data[:1000])
    try:
        wait_for(lambda: writing(http, target, user, url), "the first PATCH to hold the upload")
        assert offset(http, target, user, url) == 0  # HEAD answers; it never waits on a PATCH
        response = patch(http, target, user, url, 0, data)
        if response.status_code == 409:  # the stuck request had read and saved some bytes
            saved = int(response.text.rsplit(" ", 1)[1])
            assert 0 < saved <= 1000
            assert offset(http, target, user, url) == saved
            assert patch(http, target, user, url, saved, data[saved:]).status_code == 204
        else:
            assert response.status_code == 204, response.text
        assert upload_info(http, target, user, url)["sha256"] == sha256(data)
    finally:
        stuck.close()


def test_the_connection_survives_an_early_answer(
    target: Target, user: str, http: httpx.Client
) -> None:
    """A 409 answered before a 2 MiB body is read still leaves the connection usable."""
    data = os.urandom(2 * 1024 * 1024)
    url = create(http, target, user, len(data))
    sock = open_patch(target, user, url, 5, len(data), data)
    try:
        sock.settimeout(30)
        status, _ = read_response(sock)
        assert status == 409
        path = url[url.index("/files/") :]
        auth = target.headers(user)["Authorization"]
        sock.sendall(
            f"HEAD {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: {auth}\r\n\r\n".encode()
        )
        status, headers = read_response(sock)
        assert status == 200
        assert headers["upload-offset"] == "0"
    finally:
        sock.close()
