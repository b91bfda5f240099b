"""nginx with TLS in front of two instances: big uploads with tuspy and in Chromium, an
instance killed or stopped mid-upload, and what metrics, logs and events say afterwards."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import io
import json
import os
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser
from tusclient import client as tus

from tests.production.conftest import Stack
from tests.tus.client import OCTETS, wait_for
from tests.web.conftest import WatchedPage
from tests.web.page import pick, row

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


def _auth(stack: Stack, user: str) -> dict[str, str]:
    return {**TUS, "Authorization": f"Bearer {stack.target.token(user)}"}


def _create(https: httpx.Client, stack: Stack, user: str, length: int) -> str:
    response = https.post(
        stack.files_url, headers={**_auth(stack, user), "Upload-Length": str(length)}
    )
    assert response.status_code == 201, response.text
    location: str = response.headers["location"]
    assert location.startswith(stack.url)  # the public URL, through the trusted proxy
    return location


def _patch(
    https: httpx.Client,
    stack: Stack,
    user: str,
    url: str,
    offset: int,
    body: bytes | Iterator[bytes],
) -> httpx.Response:
    headers = {**_auth(stack, user), "Upload-Offset": str(offset), "Content-Type": OCTETS}
    return https.patch(url, headers=headers, content=body)


def _offset(https: httpx.Client, stack: Stack, user: str, url: str) -> int:
    response = https.head(url, headers=_auth(stack, user))
    assert response.status_code == 200, response.status_code
    return int(response.headers["upload-offset"])


def _sha256_of(https: httpx.Client, stack: Stack, user: str, url: str) -> str | None:
    upload_id = url.rsplit("/", 1)[1]
    response = https.get(f"{stack.url}/api/uploads/{upload_id}", headers=_auth(stack, user))
    sha: str | None = response.json().get("sha256")
    return sha


def test_nginx_speaks_http2_over_tls(stack: Stack) -> None:
    context = stack.nginx.trusting()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", stack.nginx.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"


def test_a_100_mb_upload_through_nginx_with_tuspy(
    stack: Stack, user: str, https: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stack.nginx.cert))  # tuspy uses requests
    body = os.urandom(100 * MiB)
    authorization = {"Authorization": _auth(stack, user)["Authorization"]}
    uploader = tus.TusClient(stack.files_url, headers=authorization).uploader(
        file_stream=io.BytesIO(body),
        chunk_size=16 * MiB,
        metadata={"filename": "hundred.bin"},
    )
    uploader.upload()
    assert _sha256_of(https, stack, user, uploader.url) == hashlib.sha256(body).hexdigest()
    headers = https.get(f"{stack.url}/assets/app.js").headers
    assert headers["strict-transport-security"].startswith("max-age=")
    assert "x-request-id" not in headers  # served by nginx itself, not by an instance


def test_a_100_mb_upload_through_nginx_in_chromium(
    stack: Stack, browser: Browser, user: str, tmp_path: Path
) -> None:
    context = browser.new_context(ignore_https_errors=True)
    watched = WatchedPage(context)
    try:
        watched.page.goto(f"{stack.url}/#token={stack.target.token(user)}")
        watched.page.wait_for_selector("#app:not([hidden])")
        path = tmp_path / "browser.bin"
        path.write_bytes(os.urandom(100 * MiB))
        pick(watched, path)
        row(watched, hashlib.sha256(path.read_bytes()).hexdigest())
        assert watched.unexpected_errors() == []
    finally:
        context.close()


def _serving(stack: Stack, http: httpx.Client) -> int:
    """The instance receiving a PATCH right now, by its own metrics."""
    for index, gateway in enumerate(stack.target.gateways):
        text = http.get(f"{gateway.url}/metrics").text
        if re.search(r"^tusgate_uploads_in_progress 1\.0$", text, re.MULTILINE):
            return index
    return -1


def test_an_instance_killed_mid_upload_leaves_the_upload_to_the_other(
    stack: Stack, user: str, https: httpx.Client, http: httpx.Client
) -> None:
    body = os.urandom(48 * MiB)
    url = _create(https, stack, user, len(body))
    assert _patch(https, stack, user, url, 0, body[: 8 * MiB]).status_code == 204
    killed: list[int] = []

    def slowly() -> Iterator[bytes]:
        for start in range(8 * MiB, len(body), MiB):
            yield body[start : start + MiB]
            if start >= 16 * MiB and not killed:
                wait_for(lambda: _serving(stack, http) >= 0, "the PATCH to be served")
                killed.append(_serving(stack, http))
                stack.target.gateways[killed[0]].kill()

    try:
        status: int | None = _patch(https, stack, user, url, 8 * MiB, slowly()).status_code
    except httpx.HTTPError:
        status = None  # the connection broke: as good as an error answer
    assert status != 204
    assert killed
    resumed = _offset(https, stack, user, url)  # answered by the surviving instance
    assert resumed >= 8 * MiB  # nothing acknowledged was lost
    assert _patch(https, stack, user, url, resumed, body[resumed:]).status_code == 204
    assert _sha256_of(https, stack, user, url) == hashlib.sha256(body).hexdigest()


def test_sigterm_during_uploads_loses_no_acknowledged_byte_and_clients_resume(
    stack: Stack, user: str, https: httpx.Client, http: httpx.Client
) -> None:
    bodies = [os.urandom(40 * MiB) for _ in range(3)]
    urls = [_create(https, stack, user, len(body)) for body in bodies]
    progress = [0, 0, 0]

    def upload(index: int) -> None:
        body, url = bodies[index], urls[index]
        offset = 0
        with httpx.Client(timeout=120, verify=stack.nginx.trusting(), trust_env=False) as client:
            while offset < len(body):
                try:
                    chunk = body[offset : offset + 4 * MiB]
                    response = _patch(client, stack, user, url, offset, chunk)
                except httpx.HTTPError:
                    response = None
                if response is not None and response.status_code == 204:
                    acknowledged = int(response.headers["upload-offset"])
                    assert acknowledged >= offset
                    offset = progress[index] = acknowledged
                    continue
                resumed = _offset(client, stack, user, url)
                assert resumed >= progress[index], "an acknowledged byte was lost"
                offset = resumed

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        running = [pool.submit(upload, index) for index in range(3)]
        wait_for(lambda: min(progress) >= 8 * MiB, "every upload to be under way", timeout=60)
        stopping = stack.target.gateways[0]
        os.killpg(stopping.pid, signal.SIGTERM)
        assert stopping.wait(30) == 0
        for future in running:
            future.result()
    for body, url in zip(bodies, urls, strict=True):
        assert _sha256_of(https, stack, user, url) == hashlib.sha256(body).hexdigest()

    # What the survivor and nginx say about it, and the events for consumers.
    survivor = stack.target.gateways[1]
    metrics = http.get(f"{survivor.url}/metrics").text
    assert re.search(r"^tusgate_uploads_completed_total [1-9]", metrics, re.MULTILINE)
    access = stack.nginx.access_log.read_text()
    assert "PATCH /files/" in access
    assert "token=" not in access
    nginx_ids = {line.split()[-1] for line in access.splitlines()}
    logged = survivor.json_lines()
    assert nginx_ids & {line.get("request_id") for line in logged}  # one id, end to end
    stream = stack.target.env["TUSGATE_EVENTS_STREAM"]
    events = redis.Redis.from_url(stack.target.env["TUSGATE_REDIS_URL"])

    def all_published() -> bool:
        completed = {
            json.loads(fields[b"data"])["upload_id"]
            for _, fields in events.xrange(stream)
            if fields[b"type"] == b"upload.completed"
        }
        return {url.rsplit("/", 1)[1] for url in urls} <= completed

    wait_for(all_published, "the completions on the event stream")
    events.close()


def test_nginx_limits_the_rate_of_creations_per_client(
    stack: Stack, user: str, https: httpx.Client
) -> None:
    headers = {**_auth(stack, user), "Upload-Length": "1"}
    statuses = [https.post(stack.files_url, headers=headers).status_code for _ in range(60)]
    assert statuses.count(201) >= 20  # the burst passes
    assert statuses.count(429) >= 10  # the rest of a burst faster than 10/s does not
    assert set(statuses) == {201, 429}
    assert https.get(f"{stack.url}/metrics").status_code == 404  # internal only


def test_the_resumable_draft_streams_through_nginx(stack: Stack, https: httpx.Client) -> None:
    """The IETF draft's upload resources are routed and streamed as tus uploads are."""
    user = "draft-user"
    auth = {"Authorization": f"Bearer {stack.target.token(user)}"}
    body = os.urandom(12 * MiB)
    created = https.post(f"{stack.url}/resumable/", headers={**auth, "Upload-Complete": "?0"})
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    assert url.startswith(f"{stack.url}/resumable/")  # the public URL, through the trusted proxy
    parts = (body[i : i + MiB] for i in range(0, len(body), MiB))  # chunked: length learnt last
    appended = https.patch(
        url,
        headers={
            **auth,
            "Upload-Offset": "0",
            "Upload-Complete": "?1",
            "Content-Type": "application/partial-upload",
        },
        content=parts,
    )
    assert appended.status_code == 200, appended.text
    assert appended.json()["sha256"] == hashlib.sha256(body).hexdigest()
    described = https.head(url, headers=auth)
    assert (described.status_code, described.headers["upload-complete"]) == (204, "?1")


def test_a_file_named_with_kilobytes_downloads_through_nginx(
    stack: Stack, https: httpx.Client
) -> None:
    """Metadata allows names of several KiB; percent-encoded in Content-Disposition, one made a
    response head nginx refused (502: it must fit proxy_buffer_size). Names are shortened."""
    user = "long-name-user"
    body = os.urandom(1000)
    name = "\u00e9" * 3000 + ".txt"
    metadata = "filename " + base64.b64encode(name.encode()).decode()
    headers = {
        **_auth(stack, user),
        "Upload-Length": str(len(body)),
        "Upload-Metadata": metadata,
        "Content-Type": OCTETS,
    }
    created = https.post(stack.files_url, headers=headers, content=body)
    assert created.status_code == 201, created.text
    checksum = hashlib.sha256(body).hexdigest()
    downloaded = https.get(f"{stack.url}/download/{checksum}", headers=_auth(stack, user))
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == body
    assert downloaded.headers["content-disposition"].endswith(".txt")
