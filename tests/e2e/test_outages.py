"""The S3 server going away in the middle of uploads and downloads: clients get 503 with
Retry-After (never 500), nothing acknowledged is lost, and everything completes once it is
back."""

from __future__ import annotations

import hashlib
import os

import httpx

from tests.download.client import fetch, store
from tests.faults import Cuttable
from tests.gateways import StartTarget
from tests.services import MotoServer, PostgresServer, RedisServer
from tests.tus.client import OCTETS, create, offset

MiB = 1024 * 1024


def test_an_s3_outage_is_503_and_uploads_complete_after_it(
    start: StartTarget, own_s3: MotoServer, user: str, http: httpx.Client
) -> None:
    with Cuttable(own_s3.port) as s3:
        target = start("services", TUSGATE_S3_ENDPOINT_URL=s3.url)
        stored = os.urandom(MiB)
        checksum = store(http, target, user, stored)
        body = os.urandom(12 * MiB)
        url = create(http, target, user, len(body))

        def patch(start_at: int, end: int) -> httpx.Response:
            headers = target.headers(user, Upload_Offset=str(start_at), Content_Type=OCTETS)
            return http.patch(url, headers=headers, content=body[start_at:end])

        assert patch(0, 6 * MiB).status_code == 204
        s3.cut()
        refused = [patch(6 * MiB, 9 * MiB), http.head(url, headers=target.headers(user))]
        download = fetch(http, target, user, checksum)
        for response in (*refused, download):
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1
        s3.restore()
        resumed = offset(http, target, user, url)
        assert resumed == 6 * MiB  # the acknowledged bytes, and only those
        assert patch(resumed, len(body)).status_code == 204
        upload_id = url.rsplit("/", 1)[1]
        done = http.get(f"{target.url}/api/uploads/{upload_id}", headers=target.headers(user))
        assert done.json()["sha256"] == hashlib.sha256(body).hexdigest()
        assert fetch(http, target, user, checksum).content == stored


def test_a_database_outage_is_503_and_uploads_complete_after_it(
    start: StartTarget, postgres: PostgresServer, user: str, http: httpx.Client
) -> None:
    with Cuttable(postgres.port) as proxy:
        url_of_db = postgres.new_database().replace(f":{postgres.port}/", f":{proxy.port}/")
        target = start("services", TUSGATE_DATABASE_URL=url_of_db)
        body = os.urandom(2 * MiB)
        url = create(http, target, user, len(body))
        headers = target.headers(user, Upload_Offset="0", Content_Type=OCTETS)
        assert http.patch(url, headers=headers, content=body[:MiB]).status_code == 204
        proxy.cut()
        during = [
            http.head(url, headers=target.headers(user)),
            http.get(f"{target.url}/api/files", headers=target.headers(user)),
            http.post(target.files_url, headers=target.headers(user, Upload_Length="5")),
        ]
        for response in during:
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1
        proxy.restore()
        resumed = offset(http, target, user, url)
        assert resumed == MiB
        headers = target.headers(user, Upload_Offset=str(resumed), Content_Type=OCTETS)
        assert http.patch(url, headers=headers, content=body[resumed:]).status_code == 204
        upload_id = url.rsplit("/", 1)[1]
        done = http.get(f"{target.url}/api/uploads/{upload_id}", headers=target.headers(user))
        assert done.json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_redis_outage_refuses_writes_and_they_resume_after_it(
    start: StartTarget, redis_server: RedisServer, user: str, http: httpx.Client
) -> None:
    with Cuttable(redis_server.port) as proxy:
        target = start("services", TUSGATE_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/1")
        body = os.urandom(2 * MiB)
        url = create(http, target, user, len(body))

        def patch(start_at: int, end: int) -> httpx.Response:
            headers = target.headers(user, Upload_Offset=str(start_at), Content_Type=OCTETS)
            return http.patch(url, headers=headers, content=body[start_at:end])

        assert patch(0, MiB).status_code == 204
        proxy.cut()
        refused = patch(MiB, len(body))
        assert refused.status_code == 503, refused.text  # no lock, no writer: never two
        assert int(refused.headers["retry-after"]) >= 1
        assert offset(http, target, user, url) == MiB  # HEAD needs no lock
        proxy.restore()
        assert patch(MiB, len(body)).status_code == 204
        upload_id = url.rsplit("/", 1)[1]
        done = http.get(f"{target.url}/api/uploads/{upload_id}", headers=target.headers(user))
        assert done.json()["sha256"] == hashlib.sha256(body).hexdigest()
