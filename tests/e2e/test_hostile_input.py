"""Hostile ids, names and checksums against a running gateway (issue 8, "ids and names").

Requests go out on raw sockets, byte for byte as written here: HTTP clients normalise paths
(``..`` segments, percent-encoding) before sending, which would hide exactly what is tried.
Every answer must be a precise 4xx, never a 5xx; nothing may be written or read outside the
store; every download name must come back as a small, safe ``Content-Disposition``.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.download.headers import MAX_NAME_BYTES
from tests.download.client import ADMIN, fetch
from tests.download.test_routes import _names
from tests.gateways import Target, new_user
from tests.tus.client import (
    OCTETS,
    b64,
    create,
    my_files,
    open_patch,
    patch,
    read_response,
    sha256,
    wait_for,
    writing,
)

PASSWD_LINE = b"root:"  # /etc/passwd's first line, should any answer carry it
SHA = "a" * 64

# Upload ids as an attacker writes them: traversal plain and encoded (once, twice, overlong
# UTF-8), NUL, backslashes, names of the gateway's own files, and sheer length.
HOSTILE_IDS = [
    "..",
    "%2e%2e",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%252F..%252Fetc%252Fpasswd",
    "%C0%AE%C0%AE%C0%AFetc%C0%AFpasswd",
    "..%5C..%5C..%5Cwindows%5Cwin.ini",
    "..\\..\\windows\\win.ini",
    "%00",
    "abc%00.part",
    "local-issuer.jwk",
    "tusgate.sqlite3",
    "%FF%FE",
    "x" * 4000,
]
# Paths that leave /files/ altogether on their way to a file of the machine.
TRAVERSALS = [
    "/files/../../../../etc/passwd",
    "/files/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/../../../../etc/passwd",
    "/assets/../../../../../etc/passwd",
    "/assets/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/download/../../../../etc/passwd",
    "/api/uploads/..%2F..%2F..%2Fetc%2Fpasswd",
]
# Checksums of the wrong form for every endpoint that takes one.
BAD_CHECKSUMS = [
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "g" * 64,
    "a" * 62 + "%0A",
    "..%2E%2E",
    "%00" * 22,
    "%C3%A9" * 32,
    "a" * 10000,
]
# File names as uploaders may send them (bytes: not all are UTF-8).
HOSTILE_NAMES = [
    b"../../../etc/passwd",
    b"..\\..\\..\\windows\\win.ini",
    b"/etc/shadow",
    b"%2e%2e%2fpasswd",
    b"a\x00b\x01c\x1b[31mred\x7f.txt",
    b"\r\nSet-Cookie: session=stolen",
    b"\xff\xfe\xc0\xaf..\xc0\xafpasswd.bin",
    "\u202etxt.exe".encode(),
    b"   ",
    b"x" * 5000 + b".tar.gz",
    "\u00e9".encode() * 3000 + b".txt",
]


def _raw(target: Target, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One request with ``path`` sent exactly as given; the status and the whole answer."""
    parts = urlsplit(target.url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if method in ("PATCH", "POST", "PUT"):
        lines.append("Content-Length: 0")
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while data := sock.recv(65536):
            answer += data
    status_line = answer.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), answer


def _files_under(directory: Path) -> set[Path]:
    """Every file the gateway keeps under its data directory but the database's own and the
    cold archive's (the tiering job may copy other tests' files there at any moment)."""
    archive = directory / "files" / "archive"
    return {
        path.relative_to(directory)
        for path in directory.rglob("*")
        if path.is_file()
        and not path.name.startswith("tusgate.sqlite3")
        and not path.is_relative_to(archive)
    }


@pytest.mark.parametrize("upload_id", HOSTILE_IDS)
def test_hostile_upload_ids_are_404_and_touch_nothing(
    target: Target, user: str, upload_id: str
) -> None:
    data_dir = Path(target.env["TUSGATE_DATA_DIR"])
    before = _files_under(data_dir)
    auth = target.headers(user)
    answers = {
        method: _raw(target, method, f"/files/{upload_id}", {**auth, **extra})
        for method, extra in [
            ("HEAD", {}),
            ("PATCH", {"Upload-Offset": "0", "Content-Type": OCTETS}),
            ("DELETE", {}),
        ]
    }
    answers["GET api"] = _raw(target, "GET", f"/api/uploads/{upload_id}", auth)
    for what, (status, answer) in answers.items():
        assert status == 404, (what, answer[:300])
        assert PASSWD_LINE not in answer
    assert _files_under(data_dir) == before


@pytest.mark.parametrize("path", TRAVERSALS)
def test_paths_out_of_the_gateway_lead_nowhere(target: Target, user: str, path: str) -> None:
    auth = target.headers(user)
    for method in ("GET", "HEAD", "PATCH", "DELETE"):
        status, answer = _raw(target, method, path, auth)
        assert status in (404, 405), (method, path, answer[:300])
        assert PASSWD_LINE not in answer


@pytest.mark.parametrize("checksum", BAD_CHECKSUMS)
def test_checksums_of_the_wrong_form_are_precise_4xx(
    target: Target, user: str, checksum: str
) -> None:
    auth = {"Authorization": f"Bearer {target.token(user)}"}
    admin = {"Authorization": f"Bearer {target.token(user, ADMIN)}"}
    expected = [
        ("GET", f"/download/{checksum}", auth, 404),
        ("HEAD", f"/download/{checksum}", auth, 404),
        ("GET", f"/download/{checksum}?token=x", {}, 403),
        ("DELETE", f"/api/files/{checksum}", auth, 404),
        ("POST", f"/api/files/{checksum}/link", auth, 404),
        ("PUT", f"/api/files/{checksum}/hold", admin, 400),
        ("DELETE", f"/api/files/{checksum}/hold", admin, 400),
    ]
    for method, path, headers, status in expected:
        got, answer = _raw(target, method, path, headers)
        assert got == status, (method, path, answer[:300])


def test_availability_refuses_checksums_of_the_wrong_form(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = f"{target.url}/api/files/availability"
    for checksum in [c for c in BAD_CHECKSUMS if "%" not in c] + ["", "../../etc/passwd", 7, None]:
        response = http.post(url, headers=target.headers(user), json={"checksums": [checksum]})
        assert response.status_code == 400, (checksum, response.text)
        assert response.json() == {"error": "a checksum is 64 lower-case hexadecimal digits"}


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda name: repr(name[:24]))
def test_hostile_names_come_back_as_a_safe_small_content_disposition(
    target: Target, user: str, http: httpx.Client, name: bytes
) -> None:
    body = os.urandom(1000)
    headers = target.headers(
        user,
        Upload_Length=str(len(body)),
        Content_Type=OCTETS,
        Upload_Metadata=f"filename {b64(name)}",
    )
    created = http.post(target.files_url, headers=headers, content=body)
    assert created.status_code == 201, created.text

    # The listing has the name exactly as uploaded (undecodable bytes replaced).
    listed = {item["sha256"]: item["name"] for item in my_files(http, target, user)}
    # NUL becomes U+FFFD as well: PostgreSQL's text cannot hold it (it answered 500 here).
    assert listed[sha256(body)] == name.decode("utf-8", errors="replace").replace("\x00", "\ufffd")

    # The download's head stays small (nginx refuses one past its 4 KiB buffer), and safe.
    response = fetch(http, target, user, sha256(body))
    assert response.status_code == 200
    assert response.content == body
    disposition = response.headers["content-disposition"]
    assert len(disposition) <= 50 + 4 * MAX_NAME_BYTES
    fallback, exact = _names(disposition)
    assert "/" not in fallback
    assert "\\" not in fallback
    assert len(exact.encode()) <= MAX_NAME_BYTES
    assert exact == exact.strip()
    assert exact.isprintable()
    visible = "".join(ch for ch in listed[sha256(body)] if ch.isprintable()).strip()
    if not visible:
        assert exact == sha256(body)
    elif len(visible.encode()) <= MAX_NAME_BYTES:
        assert exact == visible
    else:  # shortened, with its extension
        stem, _, extension = visible.rpartition(".")
        assert exact.endswith("." + extension)
        assert stem.startswith(exact[: -len(extension) - 1])


def test_the_store_keeps_bytes_under_its_own_keys_only(
    target: Target, user: str, http: httpx.Client
) -> None:
    """Whatever the names, the store's files are named by upload ids; nothing escapes."""
    body = os.urandom(100)
    metadata = f"filename {b64(b'../../../../tmp/escaped')}"
    headers = target.headers(
        user, Upload_Length=str(len(body)), Content_Type=OCTETS, Upload_Metadata=metadata
    )
    assert http.post(target.files_url, headers=headers, content=body).status_code == 201
    data_dir = Path(target.env["TUSGATE_DATA_DIR"])
    if target.name == "embedded":  # the S3 store's keys are checked by tests/storage
        store = data_dir / "files" / "local"
        assert (store / created_key(http, target, user, sha256(body))).is_file()
        for path in store.iterdir():
            assert re.fullmatch(r"[A-Za-z0-9_-]+(\.part|\.offset)?", path.name), path
    assert not any(path.name == "escaped" for path in Path("/tmp").iterdir())
    assert not any(path.name == "escaped" for path in data_dir.rglob("*"))


def created_key(http: httpx.Client, target: Target, user: str, checksum: str) -> str:
    """The store key of ``user``'s upload of ``checksum``, from the audit trail."""
    response = http.get(
        f"{target.url}/api/audit",
        headers=target.headers("root", roles=ADMIN),
        params={"sha256": checksum, "action": "upload.completed"},
    )
    assert response.status_code == 200, response.text
    upload_id: str = response.json()["events"][0]["upload_id"]
    return upload_id


# Found by tests/api/test_schemathesis.py, kept here as plain regression tests.


def test_text_postgresql_cannot_hold_is_a_400_not_a_500(target: Target, http: httpx.Client) -> None:
    """NUL in a query parameter or path reached PostgreSQL, which refuses it (was 500); it is
    refused before, whatever the database."""
    admin = target.headers("root", roles=ADMIN)
    audit = http.get(f"{target.url}/api/audit", headers=admin, params={"action": "a\x00b"})
    assert audit.status_code == 400, audit.text
    assert audit.json() == {"error": "action must not contain NUL"}
    for response in (
        http.get(f"{target.url}/api/quotas/a%00b", headers=admin),
        http.put(f"{target.url}/api/quotas/a%00b", headers=admin, json={"max_uploads": 1}),
    ):
        assert response.status_code == 400, response.text
        assert response.json() == {"error": "user must not contain NUL"}


@pytest.mark.parametrize(
    ("limit", "value", "status"),
    [
        ("max_uploads", 2**31 - 1, 200),
        ("max_uploads", 2**31, 400),  # an integer column: was a 500 on PostgreSQL
        ("max_concurrent_downloads", 2**31, 400),
        ("max_download_bytes", 2**63 - 1, 200),
        ("max_download_bytes", 2**63, 400),
        ("max_uploads", 7.0, 200),  # JSON's 7.0 is the integer 7 (was refused)
        ("max_uploads", 7.5, 400),
    ],
)
def test_quota_limits_are_bounded_by_what_the_database_holds(
    target: Target, http: httpx.Client, limit: str, value: float, status: int
) -> None:
    url = f"{target.url}/api/quotas/{new_user()}"
    response = http.put(url, headers=target.headers("root", roles=ADMIN), json={limit: value})
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["overrides"][limit] == value


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1\u00b9"])
def test_audit_numbers_are_ascii_digits(target: Target, http: httpx.Client, value: str) -> None:
    """``"²".isdigit()`` is true but ``int("²")`` fails: such a limit was a 500."""
    admin = target.headers("root", roles=ADMIN)
    for name in ("limit", "before"):
        response = http.get(f"{target.url}/api/audit", headers=admin, params={name: value})
        assert response.status_code == 400, response.text
        assert response.json() == {"error": f"{name} must be a non-negative integer"}


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/quotas/someone", {"GET", "HEAD", "PUT"}),
        (f"/api/files/{SHA}/hold", {"PUT", "DELETE"}),
        ("/files/", {"OPTIONS", "POST"}),
        ("/files/someupload", {"HEAD", "PATCH", "DELETE", "OPTIONS"}),
        ("/resumable/someupload", {"GET", "HEAD", "PATCH", "DELETE"}),
    ],
)
def test_a_method_not_allowed_names_every_allowed_one(
    target: Target, http: httpx.Client, path: str, allowed: set[str]
) -> None:
    """Each method had a route of its own, whose 405 named only that method in Allow."""
    method = "POST" if "POST" not in allowed else "PUT"
    response = http.request(method, f"{target.url}{path}", headers=target.headers("root"))
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == allowed


def test_head_goes_where_get_goes(target: Target, http: httpx.Client) -> None:
    admin = target.headers("root", roles=ADMIN)
    got = http.get(f"{target.url}/api/quotas/someone", headers=admin)
    headed = http.head(f"{target.url}/api/quotas/someone", headers=admin)
    assert (got.status_code, headed.status_code) == (200, 200)
    assert headed.headers["content-length"] == got.headers["content-length"]


def test_audit_times_past_the_last_year_are_400(target: Target, http: httpx.Client) -> None:
    """In UTC, 9999-12-31T23:59:59-23:59 is in year 10000, which datetime cannot hold (500)."""
    admin = target.headers("root", roles=ADMIN)
    for name in ("since", "until"):
        params = {name: "9999-12-31T23:59:59-23:59"}
        response = http.get(f"{target.url}/api/audit", headers=admin, params=params)
        assert response.status_code == 400, response.text
        assert response.json() == {"error": f"{name} must be an ISO 8601 time"}


@pytest.mark.parametrize("chunked", [False, True])
def test_json_bodies_are_bounded(target: Target, http: httpx.Client, chunked: bool) -> None:
    """Starlette's request.json() read any size into memory: 64 KiB is plenty (100 checksums
    take 7 KiB), past it 413, whether the size is declared or not."""
    body = b'{"checksums": [' + b", ".join([b'"' + b"a" * 64 + b'"'] * 2000) + b"]}"
    content = iter([body[i : i + 8192] for i in range(0, len(body), 8192)]) if chunked else body
    response = http.post(
        f"{target.url}/api/files/availability",
        headers=target.headers("someone", Content_Type="application/json"),
        content=content,
    )
    assert response.status_code == 413, response.text
    assert response.json() == {"error": "a JSON body is at most 65536 bytes"}


def test_another_users_requests_for_an_upload_do_not_interrupt_its_patch(
    target: Target, user: str, http: httpx.Client
) -> None:
    """A PATCH or DELETE naming someone else's upload is 404 — and must not make the owner's
    PATCH in progress let go of the upload first, as a request of the owner's own does."""
    url = create(http, target, user, 1000)
    sock = open_patch(target, user, url, 0, 1000, b"a" * 10)
    try:
        wait_for(lambda: writing(http, target, user, url), "the owner's PATCH to hold the upload")
        stranger = new_user()
        assert patch(http, target, stranger, url, 0, b"b" * 10).status_code == 404
        assert http.delete(url, headers=target.headers(stranger)).status_code == 404
        assert writing(http, target, user, url)  # still receiving
        sock.sendall(b"a" * 990)
        status, headers = read_response(sock)
    finally:
        sock.close()
    assert status == 204
    assert headers["upload-offset"] == "1000"
