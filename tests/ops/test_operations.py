"""Operations on real gateway processes: metrics, request logs, readiness, events, forwarded
headers, graceful shutdown, the OpenAPI document."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any

import httpx
import pytest
import redis

from app.api.openapi import DOCUMENT
from app.main import create_app
from app.settings import Settings
from tests.download.client import fetch, store
from tests.gateways import StartTarget, Target
from tests.services import MotoServer, RedisServer
from tests.tus.client import (
    OCTETS,
    create,
    offset,
    open_patch,
    read_response,
    sha256,
    upload,
    wait_for,
)

MiB = 1024 * 1024


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text format."""
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(selector) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(rf"^{pattern}$", text, re.MULTILINE)
    assert match, f"{name}{{{selector}}} not in the metrics"
    return float(match.group(1))


def _log_lines(target: Target) -> list[dict[str, Any]]:
    return target.gateway.json_lines()


def test_metrics_count_what_happened(target: Target, user: str, http: httpx.Client) -> None:
    before = http.get(f"{target.url}/metrics").text
    body = os.urandom(MiB)
    checksum = store(http, target, user, body)
    assert fetch(http, target, user, checksum).status_code == 200
    after = http.get(f"{target.url}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    sent = "tusgate_sent_bytes_total"
    # A request is counted when its answer has ended, which the client may see first.
    wait_for(
        lambda: (
            _metric(http.get(f"{target.url}/metrics").text, sent) >= _metric(before, sent) + MiB
        ),
        "the download to be counted",
    )
    text = http.get(f"{target.url}/metrics").text
    for name in ("tusgate_uploads_created_total", "tusgate_uploads_completed_total"):
        assert _metric(text, name) >= _metric(before, name) + 1
    assert (
        _metric(text, "tusgate_received_bytes_total")
        >= _metric(before, "tusgate_received_bytes_total") + MiB
    )
    assert (
        _metric(text, "tusgate_sent_bytes_total")
        >= _metric(before, "tusgate_sent_bytes_total") + MiB
    )
    count = "tusgate_request_duration_seconds_count"
    assert _metric(text, count, method="GET", route="/download/{sha256}", status="200") >= 1
    assert _metric(text, count, method="POST", route="/files/", status="201") >= 1
    assert 'tusgate_store_operation_seconds_count{location="local",operation="open"}' in text


def test_every_request_logs_one_json_line_with_its_id_and_no_token(
    target: Target, user: str, http: httpx.Client
) -> None:
    token = target.token(user)
    url = upload(http, target, user, b"logged bytes")
    response = http.head(url, headers={**target.headers(user), "X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    upload_id = url.rsplit("/", 1)[1]
    wait_for(
        lambda: any(line.get("request_id") == "trace-42" for line in _log_lines(target)),
        "the log line",
    )
    [line] = [line for line in _log_lines(target) if line.get("request_id") == "trace-42"]
    assert line["message"] == "request"
    assert (line["method"], line["route"], line["status"]) == ("HEAD", "/files/{upload_id}", 200)
    assert (line["user"], line["upload_id"]) == (user, upload_id)
    assert isinstance(line["duration_ms"], float)
    generated = http.get(f"{target.url}/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    log = target.gateway.log_path.read_text()
    assert token not in log
    assert "token=" not in log


def test_readiness_follows_the_store(
    start: StartTarget, own_s3: MotoServer, http: httpx.Client
) -> None:
    target = start("services")
    ready = http.get(f"{target.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "locks": "ok",
        "store:local": "ok",
        "store:cache": "ok",
    }
    own_s3.stop()
    down = http.get(f"{target.url}/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["store:local"] == "unreachable"
    assert http.get(f"{target.url}/healthz").status_code == 200  # alive all the same


def test_events_reach_a_consumer_group(
    start: StartTarget, redis_server: RedisServer, user: str, http: httpx.Client
) -> None:
    target = start("services", TUSGATE_EVENTS_INTERVAL_SECONDS="0.2")
    stream = target.env["TUSGATE_EVENTS_STREAM"]
    client = redis.Redis.from_url(target.env["TUSGATE_REDIS_URL"])
    client.xgroup_create(stream, "scanner", id="0", mkstream=True)
    checksum = store(http, target, user, b"scan me")
    assert (
        http.delete(f"{target.url}/api/files/{checksum}", headers=target.headers(user)).status_code
        == 204
    )
    seen: list[dict[str, object]] = []

    def consumed() -> bool:
        for _, entries in client.xreadgroup("scanner", "worker-1", {stream: ">"}, block=200) or []:
            for entry_id, fields in entries:
                seen.append(json.loads(fields[b"data"]))
                client.xack(stream, "scanner", entry_id)
        return {event["type"] for event in seen} >= {"upload.completed", "file.deleted"}

    wait_for(consumed, "the events")
    completed = next(event for event in seen if event["type"] == "upload.completed")
    assert (completed["sha256"], completed["user"]) == (checksum, user)
    assert completed["detail"] == {"size": 7, "duplicate": False}
    deleted = next(event for event in seen if event["type"] == "file.deleted")
    assert deleted["sha256"] == checksum
    client.close()


# uvicorn rewrote the client from X-Forwarded-For itself, before the gateway's own check.
@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_forwarded_headers_count_from_trusted_proxies_only(
    start: StartTarget, user: str, http: httpx.Client, server: str
) -> None:
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "files.example.org",
        "X-Forwarded-For": "203.0.113.7, 127.0.0.1",
    }
    untrusting = start("embedded", TUSGATE_SERVER=server)
    response = http.post(
        untrusting.files_url, headers={**untrusting.headers(user, Upload_Length="3"), **forwarded}
    )
    assert response.headers["location"].startswith(untrusting.url)
    trusting = start("embedded", TUSGATE_SERVER=server, TUSGATE_TRUSTED_PROXIES="127.0.0.1/32")
    response = http.post(
        trusting.files_url, headers={**trusting.headers(user, Upload_Length="3"), **forwarded}
    )
    assert response.headers["location"].startswith("https://files.example.org/files/")
    # The line is written once the answer is out: wait for it rather than race it.
    wait_for(
        lambda: any(line.get("route") == "/files/" for line in _log_lines(trusting)),
        "the creation's log line",
    )
    lines = [line for line in _log_lines(trusting) if line.get("route") == "/files/"]
    assert lines[-1]["client"] == "203.0.113.7"


def test_sigterm_saves_the_bytes_in_flight_and_the_upload_resumes(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("embedded", TUSGATE_SHUTDOWN_TIMEOUT_SECONDS="10")
    body = os.urandom(4 * MiB)
    url = create(http, target, user, len(body))
    sent = MiB + 123
    sock = open_patch(target, user, url, 0, len(body), body[:sent])
    wait_for(lambda: _writing(http, target, user, url), "the PATCH to hold the upload")
    started = time.monotonic()
    os.killpg(target.gateway.pid, signal.SIGTERM)
    status, headers = read_response(sock)
    sock.close()
    assert status == 204  # the PATCH ended normally, with what it had received
    acknowledged = int(headers["upload-offset"])
    assert 0 <= acknowledged <= sent
    assert target.gateway.wait(10) == 0  # it exited by itself, cleanly, in time
    print(f"exited {time.monotonic() - started:.2f} s after SIGTERM")
    target.gateway.start()
    assert offset(http, target, user, url) == acknowledged  # nothing acknowledged was lost
    response = http.patch(
        url,
        headers=target.headers(user, Upload_Offset=str(acknowledged), Content_Type=OCTETS),
        content=body[acknowledged:],
    )
    assert response.status_code == 204
    done = http.get(
        f"{target.url}/api/uploads/{url.rsplit('/', 1)[1]}", headers=target.headers(user)
    )
    assert done.json()["sha256"] == sha256(body)


def _writing(http: httpx.Client, target: Target, user: str, url: str) -> bool:
    upload_id = url.rsplit("/", 1)[1]
    response = http.get(f"{target.url}/api/uploads/{upload_id}", headers=target.headers(user))
    return bool(response.json()["writing"])


def test_the_openapi_document_names_served_routes_only() -> None:
    served = {
        re.sub(r":\w+\}", "}", route.path)  # type: ignore[attr-defined]
        for route in create_app(Settings()).routes
    }
    assert set(DOCUMENT["paths"]) <= served
    assert DOCUMENT["openapi"].startswith("3.1")


def test_the_openapi_document_is_served(target: Target, http: httpx.Client) -> None:
    response = http.get(f"{target.url}/api/openapi.json")
    assert response.status_code == 200
    assert response.json()["paths"]["/download/{sha256}"]["get"]["responses"]["202"]
