"""The lock contract, run against every locker; then what only a shared (Redis) locker promises."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest
import redis.asyncio

from app import redis_pool
from app.locks.base import Locker, LockTimeout, LockUnavailable
from app.locks.memory import MemoryLocker
from app.locks.redis import RedisLocker
from tests.services import RedisServer, free_port

pytestmark = pytest.mark.anyio

HANG_GUARD = 10.0
"""Bounds every wait below, so that a broken locker fails a test instead of hanging it."""


@pytest.fixture(params=["memory", "redis"])
def make_locker(request: pytest.FixtureRequest) -> Callable[[], Locker]:
    if request.param == "memory":
        return MemoryLocker
    url: str = request.getfixturevalue("redis_url")
    return lambda: RedisLocker(url)


@asynccontextmanager
async def started(locker: Locker) -> AsyncIterator[Locker]:
    await locker.start()
    try:
        yield locker
    finally:
        await locker.close()


@pytest.fixture
async def locker(make_locker: Callable[[], Locker], anyio_backend: str) -> AsyncIterator[Locker]:
    async with started(make_locker()) as instance:
        yield instance


async def test_held_reports_whether_a_key_is_taken(locker: Locker) -> None:
    assert not await locker.held("k")
    async with locker.hold("k", wait=0):
        assert await locker.held("k")
        assert not await locker.held("other")
    assert not await locker.held("k")


async def hand_over(holder: Locker, waiter: Locker) -> list[str]:
    """Hold a key on `holder`, claim it from `waiter`; the order in which things happened.

    The holder lets go only when asked, and the waiter's 10 s is far below the Redis lease TTL
    (30 s): the waiter can only get the key through the release request.
    """
    events: list[str] = []
    held, asked = anyio.Event(), anyio.Event()

    async def hold_until_asked() -> None:
        async with holder.hold("upload", wait=0) as lease:
            lease.on_release_requested(asked.set)
            held.set()
            await asked.wait()
            events.append("holder asked, letting go")

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold_until_asked)
            await held.wait()
            async with waiter.hold("upload", wait=10.0) as lease:
                events.append(f"waiter holds {lease.key}")
    return events


async def test_one_holder_at_a_time(locker: Locker) -> None:
    inside = most_inside = done = 0

    async def patch() -> None:
        nonlocal inside, most_inside, done
        async with locker.hold("upload", wait=HANG_GUARD, request_release=False) as lease:
            inside += 1
            most_inside = max(most_inside, inside)
            assert not lease.lost
            await anyio.sleep(0.005)  # the work of a PATCH, giving the others room to barge in
            inside -= 1
            done += 1

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(patch)
    assert (done, most_inside) == (20, 1)


async def test_different_keys_do_not_block_each_other(locker: Locker) -> None:
    async with locker.hold("a", wait=0) as a, locker.hold("b", wait=0) as b:
        assert (a.key, b.key) == ("a", "b")


async def test_release_request_reaches_the_holder_and_the_key_changes_hands(
    locker: Locker,
) -> None:
    assert await hand_over(locker, locker) == ["holder asked, letting go", "waiter holds upload"]


async def test_request_release_false_leaves_the_holder_alone(locker: Locker) -> None:
    asked: list[str] = []
    async with locker.hold("upload", wait=0) as lease:
        lease.on_release_requested(lambda: asked.append("asked"))
        with pytest.raises(LockTimeout):
            async with locker.hold("upload", wait=0.3, request_release=False):
                pytest.fail("got a key that was held")
        assert asked == []


async def test_wait_zero_fails_at_once_but_still_asks_the_holder(locker: Locker) -> None:
    async with locker.hold("upload", wait=0) as lease:
        asked = anyio.Event()
        lease.on_release_requested(asked.set)
        with anyio.fail_after(1.0), pytest.raises(LockTimeout):
            async with locker.hold("upload", wait=0):
                pytest.fail("got a key that was held")
        with anyio.fail_after(HANG_GUARD):
            await asked.wait()


async def test_waiter_times_out_when_the_holder_ignores_it(locker: Locker) -> None:
    """Asked repeatedly (Redis re-publishes every second), the holder still hears it once."""
    calls: list[str] = []
    async with locker.hold("upload", wait=0) as lease:
        lease.on_release_requested(lambda: calls.append("asked"))
        with pytest.raises(LockTimeout):
            async with locker.hold("upload", wait=1.5):
                pytest.fail("got a key that was held")
        assert calls == ["asked"]
        assert not lease.lost


async def test_late_and_failing_callbacks(locker: Locker) -> None:
    """A callback registered after the request runs at once; a failing one spoils nothing."""

    def broken() -> None:
        raise RuntimeError("callback bug")

    async with locker.hold("upload", wait=0) as lease:
        asked = anyio.Event()
        lease.on_release_requested(broken)
        lease.on_release_requested(asked.set)
        with pytest.raises(LockTimeout):
            async with locker.hold("upload", wait=0):
                pytest.fail("got a key that was held")
        with anyio.fail_after(HANG_GUARD):
            await asked.wait()
        late: list[str] = []
        lease.on_release_requested(lambda: late.append("late"))
        assert late == ["late"]
    async with locker.hold("other", wait=0) as other:
        asked_again = anyio.Event()
        other.on_release_requested(asked_again.set)
        with pytest.raises(LockTimeout):
            async with locker.hold("other", wait=0):
                pytest.fail("got a key that was held")
        with anyio.fail_after(HANG_GUARD):
            await asked_again.wait()


async def test_key_is_released_on_error_and_on_cancellation(locker: Locker) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with locker.hold("upload", wait=0):
            raise RuntimeError("boom")
    with anyio.CancelScope() as scope:
        async with locker.hold("upload", wait=0):
            scope.cancel()
            await anyio.sleep_forever()
    async with locker.hold("upload", wait=0) as lease:
        assert lease.key == "upload"


async def test_negative_wait_is_refused(locker: Locker) -> None:
    with pytest.raises(ValueError, match="wait"):
        locker.hold("upload", wait=-1)


# Redis only: several instances, expiry, loss.


async def test_release_request_crosses_instances(redis_url: str) -> None:
    async with started(RedisLocker(redis_url)) as one, started(RedisLocker(redis_url)) as two:
        assert await hand_over(one, two) == ["holder asked, letting go", "waiter holds upload"]
        assert await hand_over(two, one) == ["holder asked, letting go", "waiter holds upload"]


async def test_lock_of_a_dead_holder_expires(redis_url: str) -> None:
    dying = RedisLocker(redis_url, ttl=2.0)
    await dying.start()
    async with started(RedisLocker(redis_url)) as survivor:
        async with dying.hold("upload", wait=0):
            # The process "dies": no more renewals, and leaving the block releases nothing.
            await dying.close()
        with pytest.raises(LockTimeout):
            async with survivor.hold("upload", wait=0):
                pytest.fail("the dead holder's lock vanished before its TTL")
        with anyio.fail_after(HANG_GUARD):
            async with survivor.hold("upload", wait=HANG_GUARD) as lease:
                assert not lease.lost


async def test_lease_outlives_its_ttl_while_renewed(redis_url: str) -> None:
    async with (
        started(RedisLocker(redis_url, ttl=0.6)) as locker,
        started(RedisLocker(redis_url)) as other,
        locker.hold("upload", wait=0) as lease,
    ):
        await anyio.sleep(2.0)  # the passing of time under test: over three TTLs
        assert not lease.lost
        with pytest.raises(LockTimeout):
            async with other.hold("upload", wait=0, request_release=False):
                pytest.fail("a renewed lock expired")


async def test_lease_taken_behind_its_back_is_lost(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with started(RedisLocker(redis_url, ttl=0.6)) as locker:
            async with locker.hold("upload", wait=0) as lease:
                lost = anyio.Event()
                lease.on_release_requested(lost.set)
                await client.set("tusgate:lock:upload", "someone else")
                with anyio.fail_after(HANG_GUARD):
                    await lost.wait()
                assert lease.lost
            assert await client.get("tusgate:lock:upload") == "someone else"
    finally:
        await client.aclose()


async def test_a_stolen_lease_is_lost_alone(redis_url: str) -> None:
    """One call renews all of a locker's leases: the one whose key was taken is lost, and the
    others stay held past their TTL."""
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with (
            started(RedisLocker(redis_url, ttl=0.6)) as locker,
            locker.hold("kept", wait=0) as kept,
            locker.hold("stolen", wait=0) as stolen,
        ):
            lost = anyio.Event()
            stolen.on_release_requested(lost.set)
            await client.set("tusgate:lock:stolen", "someone else")
            with anyio.fail_after(HANG_GUARD):
                await lost.wait()
            await anyio.sleep(1.2)  # the passing of time under test: two TTLs
            assert stolen.lost
            assert not kept.lost
            assert await client.get("tusgate:lock:kept") == kept.token
    finally:
        await client.aclose()


async def test_lease_whose_key_vanished_is_lost(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        async with (
            started(RedisLocker(redis_url, ttl=0.6)) as locker,
            locker.hold("upload", wait=0) as lease,
        ):
            lost = anyio.Event()
            lease.on_release_requested(lost.set)
            assert await client.delete("tusgate:lock:upload") == 1
            with anyio.fail_after(HANG_GUARD):
                await lost.wait()
            assert lease.lost
    finally:
        await client.aclose()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, to stop and start without disturbing the session one."""
    with RedisServer() as server:
        yield server


async def test_redis_outage_is_unavailable_then_recovers(own_redis: RedisServer) -> None:
    async with (
        started(RedisLocker(own_redis.url)) as one,
        started(RedisLocker(own_redis.url)) as two,
    ):
        own_redis.stop()
        with pytest.raises(LockUnavailable):
            async with one.hold("upload", wait=1.0):
                pytest.fail("got a lock with Redis down")
        own_redis.start()
        # The listeners reconnect and resubscribe on their own.
        assert await hand_over(one, two) == ["holder asked, letting go", "waiter holds upload"]


async def test_lease_is_lost_when_redis_stays_down_past_the_ttl(own_redis: RedisServer) -> None:
    async with (
        started(RedisLocker(own_redis.url, ttl=1.0)) as locker,
        locker.hold("upload", wait=0) as lease,
    ):
        lost = anyio.Event()
        lease.on_release_requested(lost.set)
        own_redis.stop()
        with anyio.fail_after(HANG_GUARD):
            await lost.wait()
        assert lease.lost


async def test_unreachable_redis_is_lock_unavailable() -> None:
    locker = RedisLocker(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(LockUnavailable):
        await locker.start()


async def test_many_leases_at_once_wait_for_connections_rather_than_fail(redis_url: str) -> None:
    """More commands in flight than the pool has connections: they queue (found by the
    benchmark: 400 uploads on S3 made lock renewals and releases fail, and a PATCH 423)."""
    keys = [f"many-{number}" for number in range(3 * redis_pool.CONNECTIONS)]
    held: list[str] = []
    async with started(RedisLocker(redis_url)) as locker:

        async def hold(key: str) -> None:
            async with locker.hold(key, wait=HANG_GUARD):
                held.append(key)

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                for key in keys:
                    group.start_soon(hold, key)
        assert sorted(held) == sorted(keys)
        assert not any([await locker.held(key) for key in keys])
