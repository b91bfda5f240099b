"""GET and HEAD /download/{sha256}: who may read, the bytes, and the headers that go with them."""

from __future__ import annotations

import hashlib
import os
import re
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from tests.download.client import ADMIN, audit, fetch, store
from tests.gateways import StartTarget, Target, new_user
from tests.tus.client import upload, wait_for

# RFC 6266: the quoted ASCII fallback, then the RFC 5987 value (attr-chars and %XX only).
DISPOSITION = re.compile(
    r'attachment; filename="(?P<fallback>[\x20\x21\x23-\x5b\x5d-\x7e]*)"; '
    r"filename\*=UTF-8''(?P<encoded>(?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})*)"
)


def _names(disposition: str) -> tuple[str, str]:
    """(the ASCII fallback, the exact name) of a Content-Disposition, parsed back."""
    match = DISPOSITION.fullmatch(disposition)
    assert match is not None, disposition
    return match["fallback"], unquote(match["encoded"], errors="strict")


def _filename(disposition: str) -> str:
    return _names(disposition)[1]


def test_an_owner_downloads_the_exact_bytes(target: Target, user: str, http: httpx.Client) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)  # several store chunks, and an odd tail
    checksum = store(http, target, user, body, name="data.bin")
    response = fetch(http, target, user, checksum)
    assert response.status_code == 200, response.text
    assert hashlib.sha256(response.content).hexdigest() == checksum
    assert response.headers["content-length"] == str(len(body))
    assert response.headers["etag"] == f'"{checksum}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private, no-cache"
    assert parsedate_to_datetime(response.headers["last-modified"]).tzinfo is not None
    assert _filename(response.headers["content-disposition"]) == "data.bin"


def test_an_admin_may_read_any_file_and_anyone_else_gets_404(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = os.urandom(1000)
    checksum = store(http, target, user, body, name="private.txt", content_type="text/plain")
    unknown = fetch(http, target, user, hashlib.sha256(os.urandom(8)).hexdigest())
    stranger = fetch(http, target, new_user(), checksum)
    assert stranger.status_code == 404
    assert (stranger.status_code, stranger.json()) == (unknown.status_code, unknown.json())
    admin = fetch(http, target, new_user(), checksum, roles=ADMIN)
    assert admin.status_code == 200
    assert admin.content == body
    # Not an owner: neither the owner's name nor type is theirs to see.
    assert _filename(admin.headers["content-disposition"]) == checksum
    assert admin.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(
    "checksum", ["not-a-checksum", "A" * 64, "a" * 63, "a" * 65, "g" * 64, "a" * 64 + "%0A"]
)
def test_malformed_checksums_are_404(
    target: Target, user: str, http: httpx.Client, checksum: str
) -> None:
    response = fetch(http, target, user, checksum)
    assert response.status_code == 404
    assert response.json() == {"error": "file not found"}


def test_a_download_needs_a_token(target: Target, user: str, http: httpx.Client) -> None:
    checksum = store(http, target, user, os.urandom(100))
    response = http.get(f"{target.url}/download/{checksum}")
    assert response.status_code == 401
    assert "missing bearer token" in response.headers["www-authenticate"]


def test_head_has_the_headers_of_the_whole_file_and_no_body(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = os.urandom(5000)
    checksum = store(http, target, user, body, name="report.csv", content_type="text/csv")
    got = fetch(http, target, user, checksum)
    head = fetch(http, target, user, checksum, method="HEAD", headers={"Range": "bytes=0-9"})
    assert head.status_code == 200  # Range is for GET only
    assert head.content == b""
    for name in (
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
        "content-type",
        "content-disposition",
        "x-content-type-options",
    ):
        assert head.headers[name] == got.headers[name], name
    assert head.headers["content-length"] == "5000"
    assert "content-range" not in head.headers


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ('résumé "final" \\ Q1/Q2 ✓.pdf', "resume _final_ _ Q1_Q2 _.pdf"),
        ("数据.csv", "__.csv"),
        ("100% sure;.txt", "100_ sure;.txt"),
        ("evil\r\nSet-Cookie: a=b\u202e.txt", "evilSet-Cookie: a=b.txt"),
    ],
)
def test_content_disposition_carries_the_utf8_name_and_a_safe_fallback(
    target: Target, user: str, http: httpx.Client, name: str, fallback: str
) -> None:
    checksum = store(http, target, user, os.urandom(100), name=name)
    disposition = fetch(http, target, user, checksum).headers["content-disposition"]
    visible = "".join(ch for ch in name if ch.isprintable())
    assert _names(disposition) == (fallback, visible)


@pytest.mark.parametrize(
    ("declared", "served"),
    [
        ("text/html", "text/html"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ("text/html\nX-Evil: 1", "application/octet-stream"),
        ("not a type", "application/octet-stream"),
    ],
)
def test_the_content_type_is_the_uploads_when_it_is_one(
    target: Target, user: str, http: httpx.Client, declared: str, served: str
) -> None:
    checksum = store(http, target, user, os.urandom(100), content_type=declared)
    response = fetch(http, target, user, checksum)
    assert response.headers["content-type"] == served
    assert "x-evil" not in response.headers
    assert response.headers["content-disposition"].startswith("attachment;")


def test_downloads_are_audited_with_the_range_served(
    target: Target, user: str, http: httpx.Client
) -> None:
    checksum = store(http, target, user, os.urandom(1000))
    assert fetch(http, target, user, checksum, headers={"Range": "bytes=10-19"}).status_code == 206
    assert fetch(http, target, user, checksum, method="HEAD").status_code == 200
    events = audit(http, target, sha256=checksum, action="file.downloaded")
    assert len(events) == 1  # HEAD sends no bytes and is not recorded
    assert events[0]["actor"] == user
    assert events[0]["owner"] == user
    assert events[0]["detail"] == {
        "start": 10,
        "length": 10,
        "size": 1000,
        "location": "local",
        "link": False,
    }


def test_a_copy_whose_bytes_are_gone_is_503_not_a_broken_stream(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("embedded")
    body = os.urandom(1000)
    upload_id = upload(http, target, user, body).rsplit("/", 1)[1]
    Path(target.env["TUSGATE_DATA_DIR"], "files", "local", upload_id).unlink()
    response = fetch(http, target, user, hashlib.sha256(body).hexdigest())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {"error": "no copy of the file can be read now; retry later"}


def _holds_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open, per /proc."""
    fds = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fd) == str(path) for fd in fds.iterdir())


def test_a_client_going_away_releases_the_file(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("embedded")
    body = os.urandom(64 * 1024 * 1024)  # far more than the socket buffers take
    upload_id = upload(http, target, user, body).rsplit("/", 1)[1]
    stored = Path(target.env["TUSGATE_DATA_DIR"], "files", "local", upload_id).resolve()
    url = f"{target.url}/download/{hashlib.sha256(body).hexdigest()}"
    headers = {"Authorization": f"Bearer {target.token(user)}"}
    with (
        httpx.Client(timeout=30, trust_env=False) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_raw(65536)  # kept: dropping it would close the connection
        next(chunks)
        assert _holds_open(target.gateway.pid, stored)  # opened before the headers went out
    wait_for(lambda: not _holds_open(target.gateway.pid, stored), "the file to be closed")
    assert fetch(http, target, user, hashlib.sha256(body).hexdigest()).content == body
