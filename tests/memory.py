"""Tools of the memory tests: big bodies that are never held whole, and a gateway's peak RSS."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from tests.gateways import Target
from tests.services import Gateway
from tests.tus.client import OCTETS, create

MiB = 1024 * 1024
GiB = 1024 * MiB
PATCH_SIZE = 128 * MiB


def pattern(start: int, size: int, digest: Any) -> Iterator[bytes]:
    """Deterministic, incompressible bytes, generated as they are sent (never held whole)."""
    block = 1 * MiB
    for position in range(start, start + size, block):
        seed = hashlib.sha512(position.to_bytes(8, "big")).digest()
        data = (seed * (block // len(seed) + 1))[:block]
        digest.update(data)
        yield data


def upload_pattern(http: httpx.Client, target: Target, user: str, size: int) -> tuple[str, str]:
    """Upload ``size`` bytes of ``pattern`` in PATCHes of ``PATCH_SIZE``; (URL, SHA-256)."""
    digest = hashlib.sha256()
    url = create(http, target, user, size)
    for start_at in range(0, size, PATCH_SIZE):
        length = min(PATCH_SIZE, size - start_at)
        headers = target.headers(user, Upload_Offset=str(start_at), Content_Type=OCTETS)
        headers["Content-Length"] = str(length)
        response = http.patch(url, headers=headers, content=pattern(start_at, length, digest))
        assert response.status_code == 204, response.text
    return url, digest.hexdigest()


class PeakRSS:
    """``with PeakRSS(gateway) as peak:`` samples the gateway's resident memory every 50 ms
    while the block runs; ``peak.growth`` is then the highest sample minus the one at entry."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample)
        self.baseline = 0
        self.peak = 0

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def __enter__(self) -> PeakRSS:
        self.baseline = self.peak = self._gateway.rss_bytes()
        self._sampler.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._sampler.join()
        self.peak = max(self.peak, self._gateway.rss_bytes())

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, self._gateway.rss_bytes())

    def report(self, what: str) -> str:
        return (
            f"{what}: gateway RSS baseline {self.baseline / MiB:.1f} MiB,"
            f" growth {self.growth / MiB:.1f} MiB"
        )
