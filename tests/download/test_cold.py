"""Cold locations: tiering, restores into the cache (202, then 200), cache hits and eviction,
on the filesystem's cold backend and on S3's GLACIER class (moto enforces it like AWS)."""

from __future__ import annotations

import concurrent.futures
import os
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.download.client import ADMIN, audit, fetch, store
from tests.download.cold import (
    availability,
    cold_gateway,
    fetch_when_restored,
    state,
    tier,
)
from tests.gateways import StartTarget, Target, new_user
from tests.tus.client import wait_for

KiB = 1024


KINDS = pytest.mark.parametrize("kind", ["embedded", "services"])


def _restores(http: httpx.Client, target: Target, checksum: str) -> int:
    return len(audit(http, target, sha256=checksum, action="file.restored"))


def _served_from(http: httpx.Client, target: Target, checksum: str) -> object:
    latest = audit(http, target, sha256=checksum, action="file.downloaded")[0]
    return latest["detail"]["location"]  # type: ignore[index]


@KINDS
def test_a_cold_file_is_restored_once_then_served_from_the_cache(
    start: StartTarget, request: pytest.FixtureRequest, kind: str, user: str, http: httpx.Client
) -> None:
    gateway = cold_gateway(start, request, kind)
    target = gateway.target
    body = os.urandom(300 * KiB + 7)
    checksum = store(http, target, user, body, name="cold.bin")
    assert state(http, target, user, checksum) == "online"
    tier(target)
    assert gateway.objects("local") == []  # the hot copy went...
    assert len(gateway.objects("archive")) == 1  # ...once a cold one was there
    assert availability(http, target, user, checksum)[checksum] == {
        "sha256": checksum,
        "available": False,
        "state": "cold",
        "expires_at": None,
    }

    # Concurrent first requests: each is told to come back, and they share one restore.
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: fetch(http, target, user, checksum), range(6)))
    assert {answer.status_code for answer in answers} <= {202, 200}
    waiting = next(answer for answer in answers if answer.status_code == 202)
    assert int(waiting.headers["retry-after"]) >= 1
    assert waiting.json()["state"] == "restoring"

    assert fetch_when_restored(http, target, user, checksum).content == body
    assert _served_from(http, target, checksum) == "cache"
    cached = availability(http, target, user, checksum)[checksum]
    assert (cached["available"], cached["state"]) == (True, "cached")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", str(cached["expires_at"]))

    # A cache hit: the right bytes again (a range too), and no second restore.
    assert fetch(http, target, user, checksum, {"Range": "bytes=10-19"}).content == body[10:20]
    assert fetch(http, target, user, checksum).content == body
    wait_for(lambda: _restores(http, target, checksum) == 1, "one restore, audited")
    assert len(gateway.objects("cache")) == 1

    # The last owner leaves: the cold copy and the cached one go too.
    deleted = http.delete(f"{target.url}/api/files/{checksum}", headers=target.headers(user))
    assert deleted.status_code == 204
    assert gateway.objects("archive") == []
    assert gateway.objects("cache") == []


@KINDS
def test_the_least_recently_read_file_leaves_a_full_cache(
    start: StartTarget, request: pytest.FixtureRequest, kind: str, user: str, http: httpx.Client
) -> None:
    size = 100 * KiB
    gateway = cold_gateway(start, request, kind, extra=f"cache_max_bytes = {size * 5 // 2}")
    target = gateway.target
    first, second, third = (store(http, target, user, os.urandom(size)) for _ in range(3))
    tier(target)
    for checksum in (first, second):
        assert fetch(http, target, user, checksum).status_code == 202
        fetch_when_restored(http, target, user, checksum)
    fetch(http, target, user, first)  # first is now more recently read than second
    assert fetch(http, target, user, third).status_code == 202
    fetch_when_restored(http, target, user, third)
    states = availability(http, target, user, first, second, third)
    assert [states[checksum]["state"] for checksum in (first, second, third)] == [
        "cached",
        "cold",
        "cached",
    ]
    assert len(gateway.objects("cache")) == 2
    # Larger than the whole cache: it can never be restored there.
    big = store(http, target, user, os.urandom(3 * size))
    tier(target)
    refused = fetch(http, target, user, big)
    assert refused.status_code == 507
    assert "larger than the restore cache" in refused.json()["error"]


def test_availability_asks_about_many_files_and_can_start_their_restores(
    start: StartTarget, request: pytest.FixtureRequest, user: str, http: httpx.Client
) -> None:
    target = cold_gateway(start, request, "embedded").target
    cold = [store(http, target, user, os.urandom(1000)) for _ in range(2)]
    tier(target)
    online = store(http, target, user, os.urandom(1000))
    theirs = store(http, target, new_user(), os.urandom(1000))
    unknown = "0" * 64
    asked = availability(http, target, user, *cold, online, theirs, unknown, restore=True)
    assert set(asked) == {*cold, online}  # another's file is as unknown as an unknown one
    assert asked[online]["state"] == "online"
    assert {asked[checksum]["state"] for checksum in cold} <= {"restoring", "cached"}
    for checksum in cold:
        fetch_when_restored(http, target, user, checksum)
    assert availability(http, target, new_user(), theirs) == {}
    response = http.post(
        f"{target.url}/api/files/availability",
        headers=target.headers("root", roles=ADMIN),
        json={"checksums": [theirs]},
    )
    assert response.json()["files"][0]["state"] == "online"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"checksums": ["a" * 64] * 101}, "at most 100 checksums per request"),
        ({"checksums": []}, "checksums must be a non-empty list"),
        ({"checksums": ["A" * 64]}, "a checksum is 64 lower-case hexadecimal digits"),
        ({"checksums": ["a" * 64], "restore": "yes"}, "restore must be true or false"),
        (
            {"checksums": ["a" * 64], "force": True},
            'body must be {"checksums": [...], "restore": false}',
        ),
    ],
)
def test_availability_refuses_bad_requests_with_400(
    target: Target, user: str, http: httpx.Client, body: object, reason: str
) -> None:
    response = http.post(
        f"{target.url}/api/files/availability", headers=target.headers(user), json=body
    )
    assert (response.status_code, response.json()) == (400, {"error": reason})


@KINDS
def test_tiering_waits_for_its_days_and_is_safe_on_two_instances_at_once(
    start: StartTarget, request: pytest.FixtureRequest, kind: str, user: str, http: httpx.Client
) -> None:
    gateway = cold_gateway(start, request, kind, days=(1, 2))
    target = gateway.target
    checksums = [store(http, target, user, os.urandom(2000)) for _ in range(4)]
    tier(target)
    assert gateway.objects("archive") == []  # not a day old yet
    later = "--now=" + _days_from_now(1.5)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda _: tier(target, later), range(2)))
    copied = [re.search(r"copied (\d+)", report) for report in reports]
    assert sum(int(match[1]) for match in copied if match) == len(checksums)  # each once
    assert len(gateway.objects("archive")) == len(checksums)
    assert len(gateway.objects("local")) == len(checksums)  # kept: 2 days not yet up
    tier(target, "--now=" + _days_from_now(2.5))
    assert gateway.objects("local") == []
    assert {state(http, target, user, checksum) for checksum in checksums} == {"cold"}


def _days_from_now(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_an_s3_cold_location_keeps_glacier_objects_and_restores_them(
    start: StartTarget, request: pytest.FixtureRequest, user: str, http: httpx.Client
) -> None:
    gateway = cold_gateway(start, request, "services")
    target = gateway.target
    body = os.urandom(6 * 1024 * KiB + 5)  # two parts
    checksum = store(http, target, user, body)
    tier(target)
    s3, bucket = gateway.client(), gateway.bucket
    [key] = gateway.objects("archive")
    assert s3.head_object(Bucket=bucket, Key=key)["StorageClass"] == "GLACIER"
    with pytest.raises(ClientError, match="InvalidObjectState"):
        s3.get_object(Bucket=bucket, Key=key)

    assert fetch(http, target, user, checksum).status_code == 202
    response = fetch_when_restored(http, target, user, checksum)
    assert response.content == body
    assert 'ongoing-request="false"' in s3.head_object(Bucket=bucket, Key=key)["Restore"]
    [cached] = gateway.objects("cache")
    assert s3.head_object(Bucket=bucket, Key=cached).get("StorageClass", "STANDARD") == "STANDARD"
