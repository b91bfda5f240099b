"""Memory stays flat whatever the file size: a 1 GiB upload into S3."""

from __future__ import annotations

import httpx

from tests.gateways import StartTarget
from tests.memory import GiB, MiB, PeakRSS, upload_pattern
from tests.tus.client import OCTETS, create, upload_info


def test_one_gibibyte_into_s3_keeps_rss_growth_under_64_mib(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("services")
    warm = create(http, target, user, 8 * MiB)
    http.patch(
        warm,
        headers=target.headers(user, Upload_Offset="0", Content_Type=OCTETS),
        content=b"w" * 8 * MiB,
    )
    with PeakRSS(target.gateway) as rss:
        url, checksum = upload_pattern(http, target, user, GiB)
    assert upload_info(http, target, user, url)["sha256"] == checksum
    print(rss.report("1 GiB upload into S3"))
    assert rss.growth < 64 * MiB, f"RSS grew by {rss.growth / MiB:.1f} MiB"
