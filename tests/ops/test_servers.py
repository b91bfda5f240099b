"""The gateway under the ASGI server it offers besides hypercorn (setting ``server``, which the
other tests leave at hypercorn but the forwarded headers' one): an upload in several PATCHes and
its download come out right, and SIGTERM ends it cleanly."""

from __future__ import annotations

import os
import signal

import httpx

from tests.gateways import StartTarget
from tests.tus.client import OCTETS, create, offset, sha256, upload_info

MiB = 1024 * 1024


def test_an_upload_in_patches_and_its_download_under_uvicorn(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("embedded", TUSGATE_SERVER="uvicorn")
    body = os.urandom(3 * MiB + 17)
    url = create(http, target, user, len(body))
    for start_at in range(0, len(body), MiB):
        response = http.patch(
            url,
            headers=target.headers(user, Upload_Offset=str(start_at), Content_Type=OCTETS),
            content=body[start_at : start_at + MiB],
        )
        assert response.status_code == 204, response.text
    assert offset(http, target, user, url) == len(body)
    assert upload_info(http, target, user, url)["sha256"] == sha256(body)
    download = http.get(f"{target.url}/download/{sha256(body)}", headers=target.headers(user))
    assert download.status_code == 200
    assert download.content == body
    os.killpg(target.gateway.pid, signal.SIGTERM)
    assert target.gateway.wait(10) == 0
