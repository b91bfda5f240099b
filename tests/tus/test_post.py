"""POST: creation, creation-with-upload, defer-length, metadata; every way to get it wrong."""

from __future__ import annotations

import email.utils
import hashlib
from datetime import UTC, datetime

import httpx
import pytest

from tests.gateways import TUS, Target
from tests.tus.client import OCTETS, b64, create, head, my_files, upload_info


def test_creation_answers_an_unguessable_absolute_location(
    target: Target, user: str, http: httpx.Client
) -> None:
    response = http.post(target.files_url, headers=target.headers(user, Upload_Length="100"))
    assert response.status_code == 201
    location = response.headers["location"]
    assert location.startswith(target.files_url)
    assert len(location.rsplit("/", 1)[1]) >= 32
    assert response.headers["tus-resumable"] == "1.0.0"
    expires = email.utils.parsedate_to_datetime(response.headers["upload-expires"])
    assert expires > datetime.now(UTC)
    other = http.post(target.files_url, headers=target.headers(user, Upload_Length="100"))
    assert other.headers["location"] != location


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"Upload-Length": "abc"}, 400, "Upload-Length"),
        ({"Upload-Length": "-1"}, 400, "Upload-Length"),
        ({"Upload-Length": "1.5"}, 400, "Upload-Length"),
        ({}, 400, "Upload-Length or Upload-Defer-Length"),
        ({"Upload-Defer-Length": "2"}, 400, "Upload-Defer-Length"),
        ({"Upload-Defer-Length": "1", "Upload-Length": "5"}, 400, "Upload-Defer-Length"),
        ({"Upload-Length": str(1024**3 + 1)}, 413, "Tus-Max-Size"),
        ({"Upload-Length": "5", "Upload-Metadata": "name !!!"}, 400, "base64"),
        ({"Upload-Length": "5", "Upload-Metadata": "a YQ==,a Yg=="}, 400, "duplicate"),
        ({"Upload-Length": "5", "Upload-Metadata": "a b c"}, 400, "Upload-Metadata"),
        ({"Upload-Length": "5", "Upload-Concat": "sideways"}, 400, "Upload-Concat"),
        ({"Upload-Concat": "final;/files/nothere"}, 400, "partial upload"),
        ({"Upload-Length": "5", "Upload-Concat": "final;/files/x"}, 400, "Upload-Length"),
    ],
)
def test_bad_creation_requests(
    target: Target, user: str, http: httpx.Client, headers: dict[str, str], status: int, reason: str
) -> None:
    response = http.post(target.files_url, headers={**target.headers(user), **headers})
    assert response.status_code == status
    assert reason in response.text
    assert response.text.count("\n") == 1  # one line


@pytest.mark.parametrize("version", [None, "0.2.2", "1.0"])
def test_unsupported_version_is_412_with_tus_version(
    target: Target, user: str, http: httpx.Client, version: str | None
) -> None:
    headers = target.headers(user, Upload_Length="5")
    del headers["Tus-Resumable"]
    if version is not None:
        headers["Tus-Resumable"] = version
    response = http.post(target.files_url, headers=headers)
    assert response.status_code == 412
    assert response.headers["tus-version"] == "1.0.0"


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer not.a.jwt", "Basic YTpi"])
def test_no_valid_token_is_401_before_anything(
    target: Target, http: httpx.Client, authorization: str | None
) -> None:
    headers = {**TUS, "Upload-Length": "5"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = http.post(target.files_url, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_creation_with_upload_stores_the_first_bytes(
    target: Target, user: str, http: httpx.Client
) -> None:
    headers = target.headers(user, Upload_Length="10", Content_Type=OCTETS)
    response = http.post(target.files_url, headers=headers, content=b"hello")
    assert response.status_code == 201
    assert response.headers["upload-offset"] == "5"
    assert int(head(http, target, user, response.headers["location"]).headers["upload-offset"]) == 5


def test_creation_with_the_whole_upload_completes_it(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = b"all at once"
    headers = target.headers(user, Upload_Length=str(len(body)), Content_Type=OCTETS)
    response = http.post(target.files_url, headers=headers, content=body)
    assert response.status_code == 201
    info = upload_info(http, target, user, response.headers["location"])
    assert info["state"] == "done"
    assert info["sha256"] == hashlib.sha256(body).hexdigest()


def test_zero_byte_upload_completes_at_creation(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = create(http, target, user, 0, Upload_Metadata=f"filename {b64('empty.txt')}")
    info = upload_info(http, target, user, url)
    assert info["state"] == "done"
    assert info["sha256"] == hashlib.sha256(b"").hexdigest()
    assert [f["name"] for f in my_files(http, target, user)] == ["empty.txt"]


def test_metadata_is_echoed_byte_exact_and_names_stay_utf8(
    target: Target, user: str, http: httpx.Client
) -> None:
    name = "naïve 文件 ☃.bin"
    raw = b64(bytes([0xFF, 0xFE]))
    metadata = f"filename {b64(name)},filetype {b64('application/x-thing')},flag,raw {raw}"
    url = create(http, target, user, 3, Upload_Metadata=metadata)
    assert head(http, target, user, url).headers["upload-metadata"] == metadata
    response = http.patch(
        url, headers=target.headers(user, Upload_Offset="0", Content_Type=OCTETS), content=b"abc"
    )
    assert response.status_code == 204
    [listed] = my_files(http, target, user)
    assert listed["name"] == name
    assert listed["content_type"] == "application/x-thing"


def test_a_second_upload_of_the_same_bytes_is_stored_once(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = b"same bytes " * 1000
    headers = target.headers(user, Upload_Length=str(len(body)), Content_Type=OCTETS)
    for _ in range(2):
        assert http.post(target.files_url, headers=headers, content=body).status_code == 201
    files = my_files(http, target, user)
    assert [f["sha256"] for f in files] == [hashlib.sha256(body).hexdigest()]


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        # Bytes beyond ASCII (obs-text) pass HTTP parsers; base64 decoding refused them with a
        # ValueError, which was a 500 (found by tests/unit/test_fuzz_headers.py).
        ("Upload-Metadata", b"filename \x80\xff", "Upload-Metadata is malformed"),
        ("Upload-Checksum", b"sha1 \xff", "Upload-Checksum must be"),
        # urlsplit raises on an unclosed IPv6 bracket: was a 500 too.
        ("Upload-Concat", b"final;http://[::1/files/abc", "Upload-Concat must be"),
    ],
)
def test_hostile_header_bytes_are_400_not_500(
    target: Target, user: str, http: httpx.Client, name: str, value: bytes, reason: str
) -> None:
    headers: dict[str, str | bytes] = {**target.headers(user, Upload_Length="5"), name: value}
    if name == "Upload-Checksum":
        headers["Content-Type"] = OCTETS
    response = http.post(
        target.files_url, headers=headers, content=b"hello" if name == "Upload-Checksum" else b""
    )
    assert response.status_code == 400, response.text
    assert response.text.startswith(reason)
