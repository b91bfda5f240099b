"""Retention with a simulated clock: files go 30 days after their upload, held files stay."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.gateways import StartTarget, Target, new_user
from tests.services import REPO_ROOT, MotoServer
from tests.tus.client import OCTETS, my_files, sha256

ADMIN = ("admin",)


def _upload(http: httpx.Client, target: Target, user: str, body: bytes) -> str:
    headers = target.headers(user, Upload_Length=str(len(body)), Content_Type=OCTETS)
    response = http.post(target.files_url, headers=headers, content=body)
    assert response.status_code == 201
    return sha256(body)


def _sweep(target: Target, days: float) -> subprocess.Popen[str]:
    moment = datetime.now(UTC) + timedelta(days=days)
    return subprocess.Popen(
        [sys.executable, "-m", "app", "sweep", "--now", moment.isoformat()],
        cwd=REPO_ROOT,
        env={**os.environ, **target.env},
        stdout=subprocess.PIPE,
        text=True,
    )


def _files_expired(process: subprocess.Popen[str]) -> int:
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    match = re.search(r"and (\d+) files", out)
    assert match, out
    return int(match.group(1))


def _admin(target: Target) -> dict[str, str]:
    return {**target.headers("root"), "Authorization": f"Bearer {target.token('root', ADMIN)}"}


def _keys(s3: MotoServer, target: Target) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=target.env["TUSGATE_S3_BUCKET"])
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _audit(http: httpx.Client, target: Target, **query: str) -> list[dict[str, object]]:
    response = http.get(f"{target.url}/api/audit", headers=_admin(target), params=query)
    assert response.status_code == 200, response.text
    events: list[dict[str, object]] = response.json()["events"]
    return events


def test_thirty_days_later_files_are_gone_and_held_files_stay(
    start: StartTarget, own_s3: MotoServer, http: httpx.Client
) -> None:
    target = start("services")
    alice, bob = new_user(), new_user()
    only_alice = _upload(http, target, alice, os.urandom(1000))
    shared = _upload(http, target, alice, b"shared" * 100)
    assert _upload(http, target, bob, b"shared" * 100) == shared
    held = _upload(http, target, alice, os.urandom(2000))
    assert len(_keys(own_s3, target)) == 3
    hold_url = f"{target.url}/api/files/{held}/hold"
    assert http.put(hold_url, headers=target.headers(alice)).status_code == 403
    assert http.put(hold_url, headers=_admin(target)).status_code == 204

    assert _files_expired(_sweep(target, 29)) == 0
    assert len(my_files(http, target, alice)) == 3

    assert _files_expired(_sweep(target, 31)) == 3  # alice: 2 besides the held one; bob: 1
    assert [f["sha256"] for f in my_files(http, target, alice)] == [held]
    assert my_files(http, target, bob) == []
    assert len(_keys(own_s3, target)) == 1

    assert http.delete(hold_url, headers=_admin(target)).status_code == 204
    assert _files_expired(_sweep(target, 31)) == 1
    assert _keys(own_s3, target) == []

    expired = _audit(http, target, action="file.expired")
    assert sorted((e["owner"], e["sha256"]) for e in expired) == sorted(
        [(alice, only_alice), (alice, shared), (bob, shared), (alice, held)]
    )
    assert [e["action"] for e in _audit(http, target, sha256=held)][:3] == [
        "file.expired",
        "file.released",
        "file.held",
    ]


@pytest.mark.parametrize("kind", ["services", "embedded"])
def test_two_sweepers_at_once_neither_double_delete_nor_miss(
    start: StartTarget, own_s3: MotoServer, user: str, http: httpx.Client, kind: str
) -> None:
    target = start(kind)
    for _ in range(20):
        _upload(http, target, user, os.urandom(5000))
    sweepers = [_sweep(target, 31), _sweep(target, 31)]
    assert sum(_files_expired(process) for process in sweepers) == 20
    assert my_files(http, target, user) == []
    if kind == "services":
        assert _keys(own_s3, target) == []
    else:
        assert list((Path(target.env["TUSGATE_DATA_DIR"]) / "files" / "local").iterdir()) == []
    assert len(_audit(http, target, action="file.expired", user=user)) == 20


def test_the_audit_trail_records_who_did_what_from_where(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("embedded")
    digest = _upload(http, target, user, b"audited")
    quota_url = f"{target.url}/api/quotas/{user}"
    assert http.put(quota_url, headers=_admin(target), json={"max_uploads": 7}).status_code == 200
    events = _audit(http, target, user=user)
    assert [e["action"] for e in events] == ["quota.changed", "upload.completed", "upload.created"]
    changed, completed, created = events
    assert changed["actor"] == "root"
    assert changed["detail"] == {"max_uploads": 7}
    assert completed["sha256"] == digest
    assert created["actor"] == user
    assert created["client"] == "127.0.0.1"
    page = _audit(http, target, user=user, limit="2")
    assert len(page) == 2
    rest = _audit(http, target, user=user, limit="2", before=str(page[-1]["id"]))
    assert [e["action"] for e in rest] == ["upload.created"]
    assert http.get(f"{target.url}/api/audit", headers=target.headers(user)).status_code == 403
    assert http.get(f"{target.url}/api/audit?limit=0", headers=_admin(target)).status_code == 400
