"""Redis locker: one lock per key shared by every gateway instance on the same Redis.

Layout in Redis (all names start with `prefix`):

- `{prefix}lock:{key}`: a string holding the holder's random token, with a TTL. Taken with
  `SET NX PX`; renewed every ttl/3 and deleted only by scripts that first check the token, so a
  holder whose lease expired can never renew or delete its successor's lock. One task per locker
  renews all its leases in a single script call per round: a task and a call per lease cost a
  sixth of the event loop at 400 uploads on S3 (bench/RESULTS.md, optimisation 28).
- `{prefix}lock-release`: a pub/sub channel; a message is a key whose holder should let go. Every
  locker listens once (a background task started by `start`) and fires the release callbacks of
  its own lease for that key, if it has one.

A waiter retries `SET NX` every 50 ms until its deadline and re-publishes its request about once a
second, since the holder may have taken the key just after the first message went out, or the
listener may have been reconnecting. Messages are fire-and-forget: that re-publishing, not
pub/sub, is what makes release requests reliable.

Redis connection errors become `LockUnavailable` here, once; callers never see redis-py types.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

import anyio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app import redis_pool
from app.locks.base import LockTimeout, LockUnavailable, ReleaseSignal

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.05
"""Seconds between two `SET NX` attempts of a waiter."""
REQUEST_INTERVAL = 1.0
"""Seconds between two release requests of the same waiter."""
RECONNECT_DELAY = 0.5
"""Seconds the listener waits before retrying a lost pub/sub connection."""
RELEASE_TIMEOUT = 5.0
"""Longest a release may take; past it the key is left to expire."""

# KEYS: the locks; ARGV[1]: the TTL in ms, ARGV[i + 1]: the token of KEYS[i]. 1 where renewed.
_RENEW = """
local renewed = {}
for i, key in ipairs(KEYS) do
    renewed[i] = 0
    if redis.call('get', key) == ARGV[i + 1] then
        renewed[i] = redis.call('pexpire', key, ARGV[1])
    end
end
return renewed
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


@contextmanager
def _map_redis_errors() -> Iterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise LockUnavailable(f"redis unreachable: {exc}") from exc


class RedisLease:
    def __init__(self, key: str, token: str, renewed_at: float) -> None:
        self.key = key
        self.token = token
        self.renewed_at = renewed_at
        """`time.monotonic()` when the last successful SET or renewal was sent: the key lives at
        least `ttl` past it."""
        self.release_signal = ReleaseSignal()
        self._lost = False

    def on_release_requested(self, callback: Callable[[], None]) -> None:
        self.release_signal.subscribe(callback)

    @property
    def lost(self) -> bool:
        return self._lost

    def mark_lost(self) -> None:
        self._lost = True
        self.release_signal.fire()


class RedisLocker:
    def __init__(self, url: str, *, ttl: float = 30.0, prefix: str = "tusgate:") -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, not {ttl}")
        self._url = url
        self._ttl = ttl
        self._prefix = prefix
        self._channel = f"{prefix}lock-release"
        self._redis: Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._renew: AsyncScript | None = None
        self._release: AsyncScript | None = None
        self._leases: dict[str, RedisLease] = {}
        self._keeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._redis is not None:
            raise RuntimeError("RedisLocker already started")
        # A command must fail well within one renewal period, and quickly enough that a request
        # finding Redis down gets its 503 in about a second rather than after the default retries.
        timeout = min(5.0, self._ttl / 3)
        redis = redis_pool.client(
            self._url,
            wait=timeout,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries=2),
        )
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            with _map_redis_errors():
                await pubsub.subscribe(self._channel)
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            await redis.aclose()
            raise
        self._redis, self._pubsub = redis, pubsub
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._listener = asyncio.create_task(self._listen(pubsub), name="lock-release listener")
        self._keeper = asyncio.create_task(self._keep(), name="lock keeper")

    async def close(self) -> None:
        redis, pubsub, self._redis, self._pubsub = self._redis, self._pubsub, None, None
        if redis is None or pubsub is None:
            return
        tasks = [t for t in (self._listener, self._keeper) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener = self._keeper = None
        self._leases.clear()
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        await redis.aclose()

    async def held(self, key: str) -> bool:
        with _map_redis_errors():
            return bool(await self._started().exists(self._lock_key(key)))

    def hold(
        self, key: str, *, wait: float, request_release: bool = True
    ) -> AbstractAsyncContextManager[RedisLease]:
        if wait < 0:
            raise ValueError(f"wait must be >= 0, not {wait}")
        return self._hold(key, wait, request_release)

    def _started(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("RedisLocker.start() was not called, or close() was")
        return self._redis

    def _lock_key(self, key: str) -> str:
        return f"{self._prefix}lock:{key}"

    @asynccontextmanager
    async def _hold(
        self, key: str, wait: float, request_release: bool
    ) -> AsyncIterator[RedisLease]:
        lease = await self._acquire(key, wait, request_release)
        try:
            yield lease
        finally:
            await self._let_go(lease)

    async def _acquire(self, key: str, wait: float, request_release: bool) -> RedisLease:
        redis = self._started()
        token = secrets.token_hex(16)
        deadline = time.monotonic() + wait
        next_request = 0.0
        try:
            with _map_redis_errors():
                while True:
                    sent = time.monotonic()
                    px = int(self._ttl * 1000)
                    if await redis.set(self._lock_key(key), token, nx=True, px=px):
                        return self._register(RedisLease(key, token, renewed_at=sent))
                    now = time.monotonic()
                    if request_release and now >= next_request:
                        await redis.publish(self._channel, key)
                        next_request = now + REQUEST_INTERVAL
                    if now >= deadline:
                        raise LockTimeout(f"{key!r} is still locked after {wait:g} s")
                    await anyio.sleep(min(POLL_INTERVAL, deadline - now))
        except anyio.get_cancelled_exc_class():
            # Cancelled with a SET in flight: the key may be ours without our knowing it.
            await self._delete(key, token)
            raise

    def _register(self, lease: RedisLease) -> RedisLease:
        """Track a new lease; runs right after SET, with no await, so no request slips between."""
        self._leases[lease.key] = lease
        return lease

    async def _let_go(self, lease: RedisLease) -> None:
        if self._leases.get(lease.key) is lease:
            del self._leases[lease.key]
        if self._redis is not None:  # after close() the lease is left to expire, as documented
            await self._delete(lease.key, lease.token)

    async def _delete(self, key: str, token: str) -> None:
        assert self._release is not None
        with anyio.move_on_after(RELEASE_TIMEOUT, shield=True) as scope:
            try:
                await self._release(keys=[self._lock_key(key)], args=[token])
            except RedisError as exc:
                logger.warning("could not release lock %r, it will expire: %s", key, exc)
        if scope.cancelled_caught:
            logger.warning("releasing lock %r timed out, it will expire", key)

    async def _keep(self) -> None:
        """Renew every lease every ttl/3, in one call; mark a lease lost once it cannot be.

        A lease taken between two rounds is first renewed by the next, within ttl/3. After a
        failed round the next is brought forward so that it happens by the time the first key
        would expire: a lease is declared lost when that last chance fails too.
        """
        assert self._renew is not None
        period = self._ttl / 3
        delay = period
        while True:
            await anyio.sleep(delay)
            delay = period
            leases = [lease for lease in self._leases.values() if not lease.lost]
            if not leases:
                continue
            sent = time.monotonic()
            renewed: list[int | None] = [None] * len(leases)  # None: no answer
            with anyio.move_on_after(min(lease.renewed_at for lease in leases) + self._ttl - sent):
                try:
                    renewed = await self._renew(
                        keys=[self._lock_key(lease.key) for lease in leases],
                        args=[int(self._ttl * 1000), *(lease.token for lease in leases)],
                    )
                except RedisError as exc:
                    logger.warning("could not renew %d locks: %s", len(leases), exc)
            now = time.monotonic()
            for lease, done in zip(leases, renewed, strict=True):
                expires = lease.renewed_at + self._ttl
                if done:
                    lease.renewed_at = sent
                elif done == 0 or now >= expires:
                    if self._leases.get(lease.key) is lease:  # not let go meanwhile
                        logger.warning("lost lock %r", lease.key)
                        lease.mark_lost()
                else:
                    delay = min(delay, expires - now)

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except RedisError as exc:
                logger.warning("lock release channel lost, retrying: %s", exc)
                await anyio.sleep(RECONNECT_DELAY)
                continue
            if message is not None and message["type"] == "message":
                lease = self._leases.get(message["data"])
                if lease is not None:
                    lease.release_signal.fire()
