"""SIGKILL of an S3 gateway (moto + PostgreSQL + Redis) during 50 uploads, at random moments
and at named points, and of the sweeper at its own: every upload resumes and completes with
its SHA-256, one sweep leaves no object or multipart upload that the database does not account
for, and every owner's quota adds up. ``tests/crashpoints.py`` makes a process kill itself at
a named point; ``tests/crash_fleet.py`` runs the clients; ``tests/bucket_audit.py`` checks.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from tests.bucket_audit import Audit, audit, check_quotas, rows
from tests.crash_fleet import Final, Fleet, Job, finals_for, jobs_for
from tests.crashpoints import ENV, CrashPoint
from tests.gateways import StartTarget, Target, new_user
from tests.services import REPO_ROOT, Gateway, MotoServer, PostgresServer, ServiceError, log_tail
from tests.tus.client import OCTETS, create, wait_for

# A killed request's lock lingers until it expires: keep that short, so clients resume soon.
CONFIG = "lock_ttl_seconds = 3.0\nlock_wait_seconds = 5.0\n"
SEED = int(os.environ.get("TUSGATE_CRASH_SEED", "8"))
RANDOM_KILLS = 8

# (what the process was doing, where it dies)
DURING_UPLOADS = [
    ("multipart upload created, the row not yet told", "app.db.uploads:hold_bytes:before:3"),
    ("inside a PATCH, mid-body", "app.storage.s3.writer:S3Writer.write:before:40"),
    ("a part uploaded, not yet committed", "app.storage.s3.store:S3Store.upload_part:after:3"),
    (
        "between the store's commit and the database's",
        "app.storage.s3.writer:S3Writer.commit:after:5",
    ),
    ("every part uploaded, not yet completed", "app.storage.s3.store:S3Store.complete:before:1"),
    (
        "multipart upload completed, commit record not deleted",
        "app.storage.s3.store:S3Store._delete:before:1",
    ),
    (
        "between the store's finish and the database's",
        "app.storage.s3.writer:S3Writer.finish:after:2",
    ),
    ("all bytes recorded, file not yet registered", "app.db.files:register:before:1"),
    ("file registered, nothing after it done", "app.db.files:register:after:1"),
]
DURING_CONCATENATION = [
    ("a small part assembled and uploaded", "app.storage.s3.store:S3Store._assemble_part:after:1"),
    ("a part copied server-side", "app.storage.s3.store:S3Store._copy_part:after:1"),
    ("concatenated, not yet recorded", "app.storage.s3.store:S3Store.concatenate:after:1"),
]
SWEEPING_UPLOADS = [
    ("an upload expired, its bytes not yet freed", "app.tus.lifecycle:release:before:1"),
    ("bytes freed, the row not yet told", "app.db.uploads:forget_bytes:before:1"),
    ("finishing a completion cut short", "app.tus.lifecycle:complete:before:1"),
]
SWEEPING_FILES = [
    ("ownerships removed, bytes not yet deleted", "app.db.files:remove_owner:after:1"),
    (
        "an object deleted, its deletion not yet forgotten",
        "app.storage.s3.store:S3Store.delete:after:1",
    ),
]


class CrashingGateway(Gateway):
    """The gateway run through the crash-point launcher, armed with at most one point."""

    @property
    def command(self) -> Sequence[str]:
        return [sys.executable, "-m", "tests.crashpoints", *super().command[3:]]

    def arm(self, point: str | None) -> None:
        self.env.pop(ENV, None)
        if point is not None:
            self.env[ENV] = point

    def start(self) -> None:
        """Start it; dying at the armed point before /healthz answers also counts as started.

        Clients retry at once, and one can reach the armed point while the readiness probe
        is still waiting; ``died_at`` then checks that death like any other.
        """
        point = self.env.get(ENV)
        mark = None if point is None else CrashPoint.parse(point).mark
        seen = 0 if mark is None else self.log_text().count(mark)
        try:
            super().start()
        except ServiceError:
            if mark is None or self.wait(0) != -9 or self.log_text().count(mark) == seen:
                raise

    def died_at(self, point: str, timeout: float = 120.0) -> None:
        """Wait until the gateway killed itself at ``point``."""
        code = self.wait(timeout)
        assert code == -9, f"the gateway exited with {code}\n{log_tail(self.log_path)}"
        assert CrashPoint.parse(point).mark in self.log_text()


@pytest.fixture
def crashing(start: StartTarget, tmp_path: Path) -> Target:
    """A services gateway (S3 on moto, PostgreSQL, Redis) run through the launcher, unarmed."""
    config = tmp_path / "crash.toml"
    config.write_text(CONFIG)
    target = start("services", TUSGATE_CONFIG=str(config))
    plain = target.gateway
    plain.stop()
    gateway = CrashingGateway(plain.env, port=plain.port)
    plain.close()
    target.gateways[0] = gateway
    gateway.start()
    return target


def gateway_of(target: Target) -> CrashingGateway:
    gateway = target.gateway
    assert isinstance(gateway, CrashingGateway)
    return gateway


def sweep(postgres: PostgresServer, target: Target, at: datetime, point: str | None = None) -> None:
    """``python -m app sweep --now at``, killing itself at ``point`` if one is given."""
    locks_expired(postgres, target)
    env = {**target.gateway.env}
    env.pop(ENV, None)
    if point is not None:
        env[ENV] = point
    command = [sys.executable, "-m", "tests.crashpoints", "sweep", "--now", at.isoformat()]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if point is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == -9, done.stderr
        assert CrashPoint.parse(point).mark in done.stderr


def locks_expired(postgres: PostgresServer, target: Target) -> None:
    """Wait until the locks of the target's uploads have expired: a killed process leaves its
    own in Redis until their TTL, and the sweeper leaves a locked upload for its next round."""
    keys = [f"tusgate:lock:{row['id']}" for row in rows(postgres, target, "SELECT id FROM uploads")]
    client = redis.Redis.from_url(target.env["TUSGATE_REDIS_URL"])
    try:
        wait_for(lambda: not keys or not client.exists(*keys), "the killed locks to expire")
    finally:
        client.close()


def expected_files(jobs: list[Job], finals: list[Final]) -> dict[str, dict[str, int]]:
    """owner → sha256 → size of the files the clients finished."""
    files: dict[str, dict[str, int]] = {}
    for upload in [*[job for job in jobs if job.is_file], *finals]:
        files.setdefault(upload.owner, {})[upload.sha256] = len(upload.data)
    return files


def check_uploads(http: httpx.Client, target: Target, jobs: list[Job], finals: list[Final]) -> None:
    """Every upload the clients finished is done with their SHA-256; abandoned ones are where
    their clients left them."""
    for upload in [*jobs, *finals]:
        assert upload.url is not None
        upload_id = upload.url.rsplit("/", 1)[1]
        response = http.get(
            f"{target.url}/api/uploads/{upload_id}", headers=target.headers(upload.owner)
        )
        info = response.json()
        if isinstance(upload, Job) and upload.stop_at is not None:
            assert (info["state"], info["offset"]) == ("receiving", upload.stop_at)
        else:
            assert info["state"] == "done", info
            if isinstance(upload, Final) or not upload.partial:
                assert info["sha256"] == upload.sha256


def check_events(postgres: PostgresServer, target: Target) -> None:
    """Every file-making upload that is done has its one ``upload.completed`` event, whatever
    the kills: the audit trail is the outbox of published events (``app/jobs/events.py``)."""
    done = rows(
        postgres, target, "SELECT id FROM uploads WHERE state = 'done' AND sha256 IS NOT NULL"
    )
    events = rows(postgres, target, "SELECT upload_id FROM audit WHERE action = 'upload.completed'")
    assert sorted(row["upload_id"] for row in events) == sorted(row["id"] for row in done)


def check_leftovers(postgres: PostgresServer, target: Target, uploads: list[Job | Final]) -> None:
    """The uploads still receiving are the abandoned ones, and at most one more for each POST
    whose answer a kill cut off (its client never heard of it, and sent another)."""
    found = rows(postgres, target, "SELECT id FROM uploads WHERE state = 'receiving'")
    receiving = {row["id"] for row in found}
    abandoned = {
        str(job.url).rsplit("/", 1)[1]
        for job in uploads
        if isinstance(job, Job) and job.stop_at is not None
    }
    assert abandoned <= receiving
    assert len(receiving - abandoned) <= sum(upload.unanswered_posts for upload in uploads)


def sweep_and_audit(
    http: httpx.Client,
    postgres: PostgresServer,
    target: Target,
    s3: MotoServer,
    files: dict[str, dict[str, int]],
) -> Audit:
    """Quotas add up; then one sweep, past the expiry of what the clients left unfinished,
    leaves exactly the files in the bucket, and the quotas still add up."""
    check_quotas(http, postgres, target, files)
    sweep(postgres, target, datetime.now(UTC) + timedelta(hours=25))
    return check_bucket(http, postgres, target, s3, files)


def check_bucket(
    http: httpx.Client,
    postgres: PostgresServer,
    target: Target,
    s3: MotoServer,
    files: dict[str, dict[str, int]],
) -> Audit:
    """The bucket holds exactly the files, no unfinished upload, and the quotas add up."""
    swept = audit(postgres, target, s3)
    check_quotas(http, postgres, target, files)
    assert swept.unfinished == swept.multipart_uploads == 0, swept
    assert swept.objects == swept.files == sum(len(owned) for owned in files.values()), swept
    return swept


def test_fifty_uploads_survive_kills_at_random_moments(
    crashing: Target, own_s3: MotoServer, postgres: PostgresServer, http: httpx.Client
) -> None:
    rng = random.Random(SEED)
    gateway = gateway_of(crashing)
    fleet = Fleet(crashing)
    jobs = jobs_for(rng, [new_user() for _ in range(5)], 50, abandoned=3)
    total = sum(job.end for job in jobs)
    moments = sorted(rng.randrange(total * 9 // 10) for _ in range(RANDOM_KILLS))
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = fleet.run(pool, fleet.upload, jobs)
        for moment in moments:
            assert fleet.wait_for_bytes(moment, lambda: all(f.done() for f in futures))
            gateway.kill()
            gateway.start()
            fleet.restarted(f"at {moment} bytes")
        for future in futures:
            future.result()
    assert len(fleet.kills) == RANDOM_KILLS
    check_uploads(http, crashing, jobs, [])
    check_leftovers(postgres, crashing, [*jobs])
    sweep_and_audit(http, postgres, crashing, own_s3, expected_files(jobs, []))


def test_fifty_uploads_survive_kills_at_named_points(
    crashing: Target, own_s3: MotoServer, postgres: PostgresServer, http: httpx.Client
) -> None:
    rng = random.Random(SEED)
    gateway = gateway_of(crashing)
    fleet = Fleet(crashing)
    owners = [new_user() for _ in range(5)]
    partials, finals = finals_for(rng, owners[0])
    jobs = [*jobs_for(rng, owners, 50 - len(partials), abandoned=3), *partials]

    gateway.stop()
    with ThreadPoolExecutor(len(jobs)) as pool:
        for points, submit in (
            (DURING_UPLOADS, lambda: fleet.run(pool, fleet.upload, jobs)),
            (DURING_CONCATENATION, lambda: fleet.run(pool, fleet.concatenate, finals)),
        ):
            gateway.arm(points[0][1])
            gateway.start()
            futures = submit()
            for index, (what, point) in enumerate(points):
                gateway.died_at(point)
                gateway.arm(points[index + 1][1] if index + 1 < len(points) else None)
                gateway.start()
                fleet.restarted(what)
            for future in futures:
                future.result()
            gateway.stop()
    gateway.start()
    assert len(fleet.kills) == len(DURING_UPLOADS) + len(DURING_CONCATENATION)
    check_uploads(http, crashing, jobs, finals)
    check_events(postgres, crashing)
    check_leftovers(postgres, crashing, [*jobs, *finals])
    sweep_and_audit(http, postgres, crashing, own_s3, expected_files(jobs, finals))


def test_sweeps_killed_at_named_points_leave_nothing_behind(
    crashing: Target, own_s3: MotoServer, postgres: PostgresServer, http: httpx.Client
) -> None:
    rng = random.Random(SEED)
    gateway = gateway_of(crashing)
    fleet = Fleet(crashing)
    jobs = jobs_for(rng, [new_user() for _ in range(2)], 12, abandoned=4)
    with ThreadPoolExecutor(len(jobs)) as pool:
        for future in fleet.run(pool, fleet.upload, jobs):
            future.result()
    # One more upload whose completion the gateway's death cuts short, left to the sweeper.
    left = Job(new_user(), rng.randbytes(3 * 1024 * 1024), chunk=3 * 1024 * 1024)
    gateway.stop()
    gateway.arm("app.tus.lifecycle:complete:before:1")
    gateway.start()
    left.url = create(http, crashing, left.owner, len(left.data))
    with pytest.raises(httpx.TransportError):
        http.patch(
            left.url,
            headers=crashing.headers(left.owner, Upload_Offset="0", Content_Type=OCTETS),
            content=left.data,
        )
    gateway.died_at("app.tus.lifecycle:complete:before:1")
    gateway.arm(None)

    later = datetime.now(UTC) + timedelta(hours=25)
    for _, point in SWEEPING_UPLOADS:
        sweep(postgres, crashing, later, point)
    sweep(postgres, crashing, later)
    [row] = rows(
        postgres,
        crashing,
        f"SELECT state, sha256 FROM uploads WHERE id = '{left.url.rsplit('/', 1)[1]}'",
    )
    assert row == {"state": "done", "sha256": left.sha256}
    jobs.append(left)
    gateway.start()
    files = expected_files(jobs, [])
    check_bucket(http, postgres, crashing, own_s3, files)

    past_retention = datetime.now(UTC) + timedelta(days=31)
    for _, point in SWEEPING_FILES:
        sweep(postgres, crashing, past_retention, point)
    sweep(postgres, crashing, past_retention)
    assert audit(postgres, crashing, own_s3) == Audit(0, 0, 0, 0)
    expired = rows(
        postgres, crashing, "SELECT owner, sha256 FROM audit WHERE action = 'file.expired'"
    )
    owned = [(owner, sha256) for owner, by_sha in files.items() for sha256 in by_sha]
    assert sorted((row["owner"], row["sha256"]) for row in expired) == sorted(owned)
    check_quotas(http, postgres, crashing, {owner: {} for owner in files})
