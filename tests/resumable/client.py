"""Raw-HTTP helpers for the resumable-upload draft: each call is one request, nothing hidden."""

from __future__ import annotations

import base64
import socket
from urllib.parse import urlsplit

import httpx

from tests.gateways import Target

PARTIAL = "application/partial-upload"
INTEROP = {"Upload-Draft-Interop-Version": "8"}


def endpoint(target: Target) -> str:
    return f"{target.url}/resumable/"


def headers(target: Target, user: str, **extra: str) -> dict[str, str]:
    """Bearer + interop version (no Tus-Resumable); underscores stand for dashes."""
    fields = {"Authorization": f"Bearer {target.token(user)}", **INTEROP}
    fields.update({name.replace("_", "-"): value for name, value in extra.items()})
    return fields


def create(
    http: httpx.Client, target: Target, user: str, body: bytes = b"", **extra: str
) -> httpx.Response:
    return http.post(endpoint(target), headers=headers(target, user, **extra), content=body)


def append(
    http: httpx.Client,
    target: Target,
    user: str,
    url: str,
    offset: int,
    body: bytes,
    complete: bool,
    **extra: str,
) -> httpx.Response:
    wanted = {
        "Upload_Offset": str(offset),
        "Upload_Complete": "?1" if complete else "?0",
        "Content_Type": PARTIAL,
        **extra,
    }
    return http.patch(url, headers=headers(target, user, **wanted), content=body)


def state(http: httpx.Client, target: Target, user: str, url: str) -> httpx.Response:
    return http.head(url, headers=headers(target, user))


def digest(algorithm: str, raw: bytes) -> str:
    return f"{algorithm}=:{base64.b64encode(raw).decode()}:"


def interrupted_append(
    target: Target, user: str, url: str, offset: int, declared: int, sent: bytes
) -> None:
    """A PATCH announcing ``declared`` bytes whose connection drops after ``sent``."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as sock:
        fields = headers(
            target,
            user,
            Upload_Offset=str(offset),
            Upload_Complete="?1",
            Content_Type=PARTIAL,
            Content_Length=str(declared),
            Host=f"{parts.hostname}:{parts.port}",
        )
        lines = [f"PATCH {parts.path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + sent)
