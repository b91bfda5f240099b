"""Small raw-HTTP helpers for protocol tests: each call is one request, nothing hidden."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from tests.gateways import Target

OCTETS = "application/offset+octet-stream"


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def create(http: httpx.Client, target: Target, user: str, length: int | None, **extra: str) -> str:
    headers = {"Upload_Length": str(length)} if length is not None else {"Upload_Defer_Length": "1"}
    response = http.post(target.files_url, headers=target.headers(user, **headers, **extra))
    assert response.status_code == 201, response.text
    return response.headers["location"]


def upload(http: httpx.Client, target: Target, user: str, body: bytes, **extra: str) -> str:
    """A whole upload in one request (creation-with-upload); its URL."""
    headers = target.headers(user, Upload_Length=str(len(body)), Content_Type=OCTETS, **extra)
    response = http.post(target.files_url, headers=headers, content=body)
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == str(len(body))
    return response.headers["location"]


def patch(
    http: httpx.Client, target: Target, user: str, url: str, offset: int, body: bytes, **extra: str
) -> httpx.Response:
    headers = target.headers(user, Upload_Offset=str(offset), Content_Type=OCTETS, **extra)
    return http.patch(url, headers=headers, content=body)


def head(http: httpx.Client, target: Target, user: str, url: str) -> httpx.Response:
    return http.head(url, headers=target.headers(user))


def offset(http: httpx.Client, target: Target, user: str, url: str) -> int:
    response = head(http, target, user, url)
    assert response.status_code == 200, response.status_code
    return int(response.headers["upload-offset"])


def upload_info(http: httpx.Client, target: Target, user: str, url: str) -> dict[str, object]:
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    response = http.get(f"{target.url}/api/uploads/{upload_id}", headers=target.headers(user))
    assert response.status_code == 200, response.text
    info: dict[str, object] = response.json()
    return info


def writing(http: httpx.Client, target: Target, user: str, url: str) -> bool:
    """Whether a PATCH holds the upload right now (the synchronisation point of lock tests)."""
    return upload_info(http, target, user, url)["writing"] is True


def my_files(http: httpx.Client, target: Target, user: str) -> list[dict[str, object]]:
    response = http.get(f"{target.url}/api/files", headers=target.headers(user))
    assert response.status_code == 200, response.text
    files: list[dict[str, object]] = response.json()["files"]
    return files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def open_patch(
    target: Target, user: str, url: str, offset: int, declared: int, first: bytes, base: str = ""
) -> socket.socket:
    """Start a PATCH announcing ``declared`` bytes, send only ``first``, and leave it open."""
    parts = urlsplit(base or url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
    headers = target.headers(user, Upload_Offset=str(offset), Content_Type=OCTETS)
    headers["Content-Length"] = str(declared)
    headers["Host"] = f"{parts.hostname}:{parts.port}"
    lines = [f"PATCH {urlsplit(url).path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """One HTTP/1.1 response from a raw socket: status and headers (the body is skipped)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        assert data, "connection closed before a response"
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    remaining = int(headers.get("content-length", "0")) - len(rest)
    while remaining > 0:
        remaining -= len(sock.recv(remaining))
    return int(status_line.split()[1]), headers
