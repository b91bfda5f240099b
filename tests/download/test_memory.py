"""Memory stays flat whatever the file size: a 1 GiB download, streamed and hashed by the client."""

from __future__ import annotations

import hashlib
import os

import httpx

from tests.download.client import fetch, store
from tests.gateways import StartTarget
from tests.memory import GiB, MiB, PeakRSS, upload_pattern


def test_one_gibibyte_download_keeps_rss_growth_under_64_mib(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("embedded")  # a filesystem store: the upload is quick, the bytes are real
    _, checksum = upload_pattern(http, target, user, GiB)
    warm = store(http, target, user, os.urandom(8 * MiB))
    # A fresh process, so that memory the upload left behind cannot hide what the download takes.
    target.gateway.stop()
    target.gateway.start()
    assert len(fetch(http, target, user, warm).content) == 8 * MiB

    received = hashlib.sha256()
    size = 0
    url = f"{target.url}/download/{checksum}"
    headers = {"Authorization": f"Bearer {target.token(user)}"}
    with PeakRSS(target.gateway) as rss, http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(GiB)
        for chunk in response.iter_bytes(MiB):
            received.update(chunk)
            size += len(chunk)
    assert (size, received.hexdigest()) == (GiB, checksum)
    print(rss.report("1 GiB download from a filesystem store"))
    assert rss.growth < 64 * MiB, f"RSS grew by {rss.growth / MiB:.1f} MiB"
