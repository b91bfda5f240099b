"""Download quotas: downloads in all, at once, and bytes per window; 429 for each, and a slot
freed however its download ends. On both gateways: counters in process and in Redis."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from tests.download.client import ADMIN, fetch, store
from tests.gateways import Target
from tests.tus.client import wait_for

MiB = 1024 * 1024


def _limit(http: httpx.Client, target: Target, user: str, **limits: int) -> None:
    url = f"{target.url}/api/quotas/{user}"
    response = http.put(url, headers=target.headers("root", roles=ADMIN), json=limits)
    assert response.status_code == 200, response.text


def _usage(http: httpx.Client, target: Target, user: str) -> dict[str, int]:
    response = http.get(f"{target.url}/api/me", headers=target.headers(user))
    assert response.status_code == 200
    usage: dict[str, int] = response.json()["usage"]
    return usage


@contextmanager
def _slow_download(target: Target, user: str, checksum: str) -> Iterator[None]:
    """A download whose client has read its headers and then stops reading, with a receive
    buffer too small for the file (the kernel would otherwise take tens of MiB of it), and
    goes away at the end of the block."""
    parts = urlsplit(target.url)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect((parts.hostname, parts.port))
        sock.sendall(
            f"GET /download/{checksum} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {target.token(user)}\r\n\r\n".encode()
        )
        assert sock.recv(12) == b"HTTP/1.1 200"
        yield


def test_simultaneous_downloads_are_limited_and_an_aborted_one_frees_its_slot(
    target: Target, user: str, http: httpx.Client
) -> None:
    _limit(http, target, user, max_concurrent_downloads=1)
    checksum = store(http, target, user, os.urandom(16 * MiB))
    with _slow_download(target, user, checksum):
        refused = fetch(http, target, user, checksum)
        assert refused.status_code == 429
        assert "max_concurrent_downloads 1" in refused.json()["error"]
        assert int(refused.headers["retry-after"]) >= 1
        assert _usage(http, target, user)["downloads_in_progress"] == 1
    # The client went away mid-file: the slot comes back.
    wait_for(lambda: _usage(http, target, user)["downloads_in_progress"] == 0, "the slot")
    response = fetch(http, target, user, checksum)
    assert response.status_code == 200
    assert len(response.content) == 16 * MiB
    # A completed download frees its slot too (once its answer has ended on the server).
    wait_for(lambda: _usage(http, target, user)["downloads_in_progress"] == 0, "the release")


def test_downloads_are_counted_once_per_file_and_resuming_does_not_count(
    target: Target, user: str, http: httpx.Client
) -> None:
    _limit(http, target, user, max_downloads=2)
    checksum = store(http, target, user, os.urandom(1000))
    assert fetch(http, target, user, checksum).status_code == 200
    assert fetch(http, target, user, checksum, {"Range": "bytes=0-99"}).status_code == 206
    assert fetch(http, target, user, checksum, {"Range": "bytes=100-"}).status_code == 206
    refused = fetch(http, target, user, checksum)
    assert refused.status_code == 429
    assert refused.json()["error"] == "download limit: 2 of max_downloads 2"
    assert "retry-after" not in refused.headers  # waiting does not help; an admin does
    assert fetch(http, target, user, checksum, {"Range": "bytes=500-"}).status_code == 206
    assert fetch(http, target, user, checksum, method="HEAD").status_code == 200
    assert _usage(http, target, user)["downloads"] == 2
    _limit(http, target, user, max_downloads=3)
    assert fetch(http, target, user, checksum).status_code == 200


def test_bytes_per_rolling_window_are_limited(
    target: Target, user: str, http: httpx.Client
) -> None:
    _limit(http, target, user, max_download_bytes=1500)
    checksum = store(http, target, user, os.urandom(1000))
    assert fetch(http, target, user, checksum).status_code == 200
    refused = fetch(http, target, user, checksum)
    assert refused.status_code == 429
    assert "max_download_bytes 1500" in refused.json()["error"]
    assert 0 < int(refused.headers["retry-after"]) <= 24 * 3600  # until the first leaves
    assert fetch(http, target, user, checksum, {"Range": "bytes=500-899"}).status_code == 206
    assert _usage(http, target, user)["downloaded_bytes_in_window"] == 1400
    assert fetch(http, target, user, checksum, {"Range": "bytes=0-100"}).status_code == 429
