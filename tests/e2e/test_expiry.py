"""Expiration and termination free what an unfinished upload holds in the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.gateways import StartTarget, Target
from tests.services import REPO_ROOT, MotoServer
from tests.tus.client import create, head, patch, upload_info, wait_for

MiB = 1024 * 1024


def _multipart_uploads(s3: MotoServer, target: Target) -> list[object]:
    listed = s3.client().list_multipart_uploads(Bucket=target.env["TUSGATE_S3_BUCKET"])
    return list(listed.get("Uploads", []))


def _keys(s3: MotoServer, target: Target) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=target.env["TUSGATE_S3_BUCKET"])
    return [item["Key"] for item in listed.get("Contents", [])]


def test_an_expired_upload_is_410_and_its_parts_are_aborted(
    start: StartTarget, own_s3: MotoServer, user: str, http: httpx.Client
) -> None:
    target = start(
        "services", TUSGATE_UPLOAD_EXPIRY_SECONDS="2", TUSGATE_SWEEP_INTERVAL_SECONDS="0.2"
    )
    url = create(http, target, user, 20 * MiB)
    response = patch(http, target, user, url, 0, os.urandom(6 * MiB))  # one part and a tail
    assert response.status_code == 204
    assert "upload-expires" in response.headers
    assert len(_multipart_uploads(own_s3, target)) == 1
    wait_for(lambda: head(http, target, user, url).status_code == 410, "the upload to expire")
    wait_for(lambda: upload_info(http, target, user, url)["state"] == "expired", "the sweeper")
    wait_for(lambda: not _multipart_uploads(own_s3, target), "the multipart upload to go")
    assert _keys(own_s3, target) == []
    assert patch(http, target, user, url, 6 * MiB, b"late").status_code == 410


def test_termination_aborts_the_parts_at_once(
    start: StartTarget, own_s3: MotoServer, user: str, http: httpx.Client
) -> None:
    target = start("services")
    url = create(http, target, user, 20 * MiB)
    assert patch(http, target, user, url, 0, os.urandom(6 * MiB)).status_code == 204
    assert http.delete(url, headers=target.headers(user)).status_code == 204
    assert _multipart_uploads(own_s3, target) == []
    assert _keys(own_s3, target) == []


def test_the_sweep_command_expires_on_the_embedded_store(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start(
        "embedded", TUSGATE_UPLOAD_EXPIRY_SECONDS="1", TUSGATE_SWEEP_INTERVAL_SECONDS="3600"
    )
    url = create(http, target, user, 10)
    assert patch(http, target, user, url, 0, b"12345").status_code == 204
    files = Path(target.env["TUSGATE_DATA_DIR"]) / "files" / "local"
    assert sorted(path.suffix for path in files.iterdir()) == [".offset", ".part"]
    wait_for(lambda: head(http, target, user, url).status_code == 410, "the upload to expire")
    swept = subprocess.run(
        [sys.executable, "-m", "app", "sweep"],
        cwd=REPO_ROOT,
        env={**os.environ, **target.env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert swept.stdout.startswith("expired 1 uploads")
    assert list(files.iterdir()) == []
    assert upload_info(http, target, user, url)["state"] == "expired"
