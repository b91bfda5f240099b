"""Helpers for tests of cold locations: a gateway whose files go cold, and the calls around it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.download.client import fetch
from tests.gateways import StartTarget, Target
from tests.services import REPO_ROOT, S3_ACCESS_KEY, S3_SECRET_KEY, MotoServer
from tests.tus.client import wait_for

POLL = "0.1"  # restore_poll_seconds: restores in these tests are quick


# Where each location keeps its objects on the "services" gateway: one bucket, three prefixes.
PREFIXES = {"local": "hot/", "archive": "cold/", "cache": "cache/"}


@dataclass
class ColdGateway:
    """A gateway whose tiering (run by ``tier``) copies every file into the cold location
    ``archive`` and drops the hot copy in ``local``: its files end up cold only. Embedded: both
    are directories; services: S3 prefixes (``archive`` in GLACIER), the cache too."""

    target: Target
    s3: MotoServer | None

    def objects(self, location: str) -> list[str]:
        """The finished objects a location (or the cache) holds."""
        if self.s3 is None:
            directory = Path(self.target.env["TUSGATE_DATA_DIR"]) / "files" / location
            if not directory.exists():
                return []
            return sorted(path.name for path in directory.iterdir() if "." not in path.name)
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=PREFIXES[location])
        return sorted(item["Key"] for item in listed.get("Contents", []))

    @property
    def bucket(self) -> str:
        return self.target.env["TUSGATE_S3_BUCKET"]

    def client(self) -> Any:
        assert self.s3 is not None
        return boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint_url,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name="us-east-1",
        )


def cold_gateway(
    start: StartTarget,
    request: pytest.FixtureRequest,
    kind: str,
    *,
    extra: str = "",
    days: tuple[float, float] = (0, 0),
) -> ColdGateway:
    """``days``: (copy, drop) after the upload."""
    s3, hot, cold, cache = None, "", "", ""
    if kind == "services":
        s3 = request.getfixturevalue("own_s3")  # the server `start` gives this test's gateways
        hot, cold = (
            f"backend = 's3'\n[locations.s3]\nprefix = '{PREFIXES[name]}'"
            for name in ("local", "archive")
        )
        cache = f"[cache]\nbackend = 's3'\n[cache.s3]\nprefix = '{PREFIXES['cache']}'"
    config = request.getfixturevalue("tmp_path") / f"cold-{kind}.toml"
    config.write_text(
        f"restore_poll_seconds = {POLL}\ntiering_interval_seconds = 3600\n{extra}\n"
        f"[[locations]]\nname = 'local'\ndrop_after_days = {days[1]}\n{hot}\n"
        f"[[locations]]\nname = 'archive'\nkind = 'cold'\ncopy_after_days = {days[0]}\n"
        f"{cold}\n{cache}\n"
    )
    return ColdGateway(start(kind, TUSGATE_CONFIG=str(config)), s3)


def tier(target: Target, *arguments: str) -> str:
    """``python -m app tier`` beside the gateway; its report."""
    done = subprocess.run(
        [sys.executable, "-m", "app", "tier", *arguments],
        cwd=REPO_ROOT,
        env={**os.environ, **target.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def availability(
    http: httpx.Client, target: Target, user: str, *checksums: str, restore: bool = False
) -> dict[str, dict[str, object]]:
    response = http.post(
        f"{target.url}/api/files/availability",
        headers=target.headers(user),
        json={"checksums": list(checksums), "restore": restore},
    )
    assert response.status_code == 200, response.text
    return {item["sha256"]: item for item in response.json()["files"]}


def state(http: httpx.Client, target: Target, user: str, checksum: str) -> object:
    return availability(http, target, user, checksum)[checksum]["state"]


def fetch_when_restored(
    http: httpx.Client, target: Target, user: str, checksum: str
) -> httpx.Response:
    """Download once the restore started by an earlier request has put the file in the cache."""
    wait_for(lambda: state(http, target, user, checksum) == "cached", "the restore")
    response = fetch(http, target, user, checksum)
    assert response.status_code == 200, response.text
    return response
