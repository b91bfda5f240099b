"""Memory stays flat whatever the file size: a 1 GiB upload into S3."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from tests.e2e.conftest import StartTarget
from tests.tus.client import create, upload_info

MiB = 1024 * 1024
GiB = 1024 * MiB
PATCH_SIZE = 128 * MiB


def _pattern(start: int, size: int, digest: Any) -> Iterator[bytes]:
    """Deterministic, incompressible bytes, generated as they are sent (never held whole)."""
    block = 1 * MiB
    for position in range(start, start + size, block):
        seed = hashlib.sha512(position.to_bytes(8, "big")).digest()
        data = (seed * (block // len(seed) + 1))[:block]
        digest.update(data)
        yield data


def test_one_gibibyte_into_s3_keeps_rss_growth_under_64_mib(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("services")
    gateway = target.gateway
    warm = create(http, target, user, 8 * MiB)
    http.patch(
        warm,
        headers=target.headers(
            user, Upload_Offset="0", Content_Type="application/offset+octet-stream"
        ),
        content=b"w" * 8 * MiB,
    )
    baseline = gateway.rss_bytes()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, gateway.rss_bytes())

    sampler = threading.Thread(target=sample)
    sampler.start()
    digest = hashlib.sha256()
    url = create(http, target, user, GiB)
    try:
        for start_at in range(0, GiB, PATCH_SIZE):
            headers = target.headers(
                user, Upload_Offset=str(start_at), Content_Type="application/offset+octet-stream"
            )
            headers["Content-Length"] = str(PATCH_SIZE)
            response = http.patch(
                url, headers=headers, content=_pattern(start_at, PATCH_SIZE, digest)
            )
            assert response.status_code == 204, response.text
    finally:
        done.set()
        sampler.join()
    assert upload_info(http, target, user, url)["sha256"] == digest.hexdigest()
    growth = peak - baseline
    print(f"gateway RSS: baseline {baseline / MiB:.1f} MiB, growth {growth / MiB:.1f} MiB")
    assert growth < 64 * MiB, f"RSS grew by {growth / MiB:.1f} MiB"
