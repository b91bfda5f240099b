"""The gateway under the ASGI server it offers besides uvicorn (setting ``server``, which the
other tests leave at uvicorn but the forwarded headers' and the slow clients' ones): an upload in
several PATCHes and its download come out right, and SIGTERM ends it cleanly. And the deadline
uvicorn is given for request heads (app/uvicorn_protocol.py) spares bodies, responses and
pipelined requests."""

from __future__ import annotations

import os
import signal
import socket
import time
from urllib.parse import urlsplit

import httpx

from tests.gateways import StartTarget
from tests.tus.client import (
    OCTETS,
    create,
    offset,
    open_patch,
    read_response,
    sha256,
    upload_info,
)

MiB = 1024 * 1024


def test_an_upload_in_patches_and_its_download_under_hypercorn(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("embedded", TUSGATE_SERVER="hypercorn")
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


def test_the_head_deadline_spares_bodies_and_pipelined_requests_under_uvicorn(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("embedded", TUSGATE_SERVER="uvicorn", TUSGATE_KEEP_ALIVE_TIMEOUT_SECONDS="1")
    url = create(http, target, user, 10)
    sock = open_patch(target, user, url, 0, 10, b"01234")
    time.sleep(2)  # the client's own pace: the rest of the body comes after the deadline
    sock.sendall(b"56789")
    assert read_response(sock)[0] == 204
    sock.close()
    assert offset(http, target, user, url) == 10

    # Two HEADs in one send: the second, already received, is answered after the first.
    parts = urlsplit(url)
    request = "\r\n".join(
        [f"HEAD {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
        + [f"{name}: {value}" for name, value in target.headers(user).items()]
    )
    with socket.create_connection((parts.hostname or "", parts.port or 80)) as pipelined:
        pipelined.sendall(((request + "\r\n\r\n") * 2).encode())
        pipelined.settimeout(10)
        answers = pipelined.recv(65536)
        while answers.count(b"HTTP/1.1 200") < 2:
            more = pipelined.recv(65536)
            assert more, f"closed after {answers!r}"
            answers += more
        # Then idle: closed by the deadline.
        assert pipelined.recv(1) == b""
