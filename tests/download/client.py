"""Helpers for download tests: each call is one request (after an upload), nothing hidden."""

from __future__ import annotations

import httpx

from tests.gateways import Target
from tests.tus.client import b64, sha256, upload

ADMIN = ("admin",)


def store(
    http: httpx.Client,
    target: Target,
    user: str,
    body: bytes,
    name: str | None = None,
    content_type: str | None = None,
) -> str:
    """Upload ``body`` as ``user``, with a file name and type if given; its SHA-256."""
    pairs = [("filename", name), ("filetype", content_type)]
    metadata = ",".join(f"{key} {b64(value)}" for key, value in pairs if value is not None)
    upload(http, target, user, body, **({"Upload_Metadata": metadata} if metadata else {}))
    return sha256(body)


def fetch(
    http: httpx.Client,
    target: Target,
    user: str,
    checksum: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    roles: tuple[str, ...] = (),
) -> httpx.Response:
    """``/download/{checksum}`` with ``user``'s bearer token and ``headers``."""
    authorization = {"Authorization": f"Bearer {target.token(user, roles)}"}
    url = f"{target.url}/download/{checksum}"
    return http.request(method, url, headers={**authorization, **(headers or {})})


def audit(http: httpx.Client, target: Target, **query: str) -> list[dict[str, object]]:
    """Audit events, newest first, as an admin reads them."""
    response = http.get(
        f"{target.url}/api/audit", headers=target.headers("root", roles=ADMIN), params=query
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, object]] = response.json()["events"]
    return events
