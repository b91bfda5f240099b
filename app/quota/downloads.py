"""Download quotas: how many downloads, how many at once, and how many bytes per rolling window.

REGARDS counts one download per file read, whatever its size; we count a request that starts at
byte 0 (a whole file, or the first range of one), so that a client resuming a download with
``Range`` does not pay twice. Every download holds a slot while its bytes flow, released when the
answer ends however it ends; bytes are charged when the download starts, for the span asked.

The counters live in Redis when the gateway has one (every instance sees the same), in the
process otherwise. In Redis a slot is a lease renewed while the stream runs, so the slots of an
instance that died free themselves; the check and the charge are one optimistic transaction
(WATCH/MULTI), so instances racing for a user's last slot cannot both win.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

import redis.asyncio as redis
from databases import Database
from redis.exceptions import WatchError

from app import redis_pool
from app.quota.storage import overrides
from app.settings import Settings

LIMITS = ("max_downloads", "max_concurrent_downloads", "max_download_bytes")
LEASE_SECONDS = 60.0  # a Redis slot's lease; the stream renews it well before it runs out
CONCURRENT_RETRY_SECONDS = 5


@dataclass(frozen=True)
class Limits:
    max_downloads: int | None
    max_concurrent_downloads: int | None
    max_download_bytes: int | None
    window_seconds: int


@dataclass(frozen=True)
class Usage:
    downloads: int
    in_progress: int
    window_bytes: int


@dataclass(frozen=True)
class Slot:
    user: str
    id: str
    size: int
    counted: bool
    at: float  # when it was charged


class DownloadRefused(Exception):
    """A download would break a limit: the message names it; ``retry_after`` in seconds when
    waiting helps."""

    def __init__(self, message: str, retry_after: int | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


async def limits(db: Database, settings: Settings, user: str) -> Limits:
    chosen = await overrides(db, user, LIMITS)
    default = Limits(
        settings.quota_max_downloads,
        settings.quota_max_concurrent_downloads,
        settings.quota_max_download_bytes,
        settings.download_window_seconds,
    )
    return replace(default, **{name: value for name, value in chosen.items() if value is not None})


def check(limits: Limits, now: float, state: State, size: int, counted: bool) -> None:
    """Raise ``DownloadRefused`` if one more download of ``size`` bytes breaks a limit."""
    if counted and limits.max_downloads is not None and state.downloads >= limits.max_downloads:
        raise DownloadRefused(
            f"download limit: {state.downloads} of max_downloads {limits.max_downloads}", None
        )
    concurrent = limits.max_concurrent_downloads
    if concurrent is not None and len(state.active) >= concurrent:
        raise DownloadRefused(
            f"simultaneous download limit: {len(state.active)} of max_concurrent_downloads "
            f"{concurrent}",
            CONCURRENT_RETRY_SECONDS,
        )
    budget = limits.max_download_bytes
    if budget is None:
        return
    used = state.usage().window_bytes
    if used + size <= budget:
        return
    retry = None
    if size <= budget:  # wait until enough of the oldest downloads leave the window
        freed = used + size - budget
        for at, spent in sorted(state.window):
            freed -= spent
            if freed <= 0:
                retry = max(1, math.ceil(at + limits.window_seconds - now))
                break
    raise DownloadRefused(
        f"download volume limit: {used} bytes in the last {limits.window_seconds} s + {size} > "
        f"max_download_bytes {budget}",
        retry,
    )


@dataclass
class State:
    """One user's counters: downloads counted, slots held, (time, bytes) charged lately."""

    downloads: int = 0
    active: set[str] = field(default_factory=set)
    window: deque[tuple[float, int]] = field(default_factory=deque)

    def usage(self) -> Usage:
        return Usage(self.downloads, len(self.active), sum(size for _, size in self.window))


class Meter(Protocol):
    async def take(self, user: str, limits: Limits, size: int, *, counted: bool) -> Slot:
        """Check and charge a download; its slot is held until ``release``."""

    async def renew(self, slot: Slot) -> None:
        """The download is still running (keeps a lease alive)."""

    async def release(self, slot: Slot, *, refund: bool = False) -> None:
        """Free the slot; ``refund``: the download never started, give its charge back."""

    async def usage(self, user: str, window_seconds: int) -> Usage: ...

    async def close(self) -> None: ...


class MemoryMeter:
    """Counters of this process alone (the embedded gateway)."""

    def __init__(self) -> None:
        self._users: dict[str, State] = {}

    async def take(self, user: str, limits: Limits, size: int, *, counted: bool) -> Slot:
        now = time.time()
        state = self._fresh(user, now, limits.window_seconds)
        check(limits, now, state, size, counted)
        slot = Slot(user, uuid.uuid4().hex, size, counted, now)
        state.downloads += counted
        state.active.add(slot.id)
        state.window.append((now, size))
        return slot

    async def renew(self, slot: Slot) -> None:
        pass  # the slot lives as long as the process

    async def release(self, slot: Slot, *, refund: bool = False) -> None:
        state = self._users.setdefault(slot.user, State())
        state.active.discard(slot.id)
        if refund:
            state.downloads -= slot.counted
            if (slot.at, slot.size) in state.window:
                state.window.remove((slot.at, slot.size))

    async def usage(self, user: str, window_seconds: int) -> Usage:
        state = self._fresh(user, time.time(), window_seconds)
        return state.usage()

    async def close(self) -> None:
        pass

    def _fresh(self, user: str, now: float, window_seconds: int) -> State:
        state = self._users.setdefault(user, State())
        while state.window and state.window[0][0] <= now - window_seconds:
            state.window.popleft()
        return state


class RedisMeter:
    """Counters in Redis, shared by every instance. Keys per user: ``…:count`` (downloads),
    ``…:active`` (slot → lease end) and ``…:window`` ("slot:bytes" → when charged)."""

    def __init__(self, url: str, prefix: str = "tusgate:downloads:") -> None:
        self._client: redis.Redis = redis_pool.client(url)
        self._prefix = prefix

    async def take(self, user: str, limits: Limits, size: int, *, counted: bool) -> Slot:
        count, active, window = self._keys(user)
        async with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(count, active, window)
                    now = time.time()
                    slot = Slot(user, uuid.uuid4().hex, size, counted, now)
                    state = await self._state(pipe, user, now, limits.window_seconds)
                    check(limits, now, state, size, counted)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.zremrangebyscore(active, "-inf", now)
                    pipe.zremrangebyscore(window, "-inf", now - limits.window_seconds)
                    if counted:
                        pipe.incr(count)
                    pipe.zadd(active, {slot.id: now + LEASE_SECONDS})
                    pipe.zadd(window, {f"{slot.id}:{size}": now})
                    await pipe.execute()
                    return slot
                except WatchError:
                    continue  # another instance charged this user meanwhile: check again

    async def renew(self, slot: Slot) -> None:
        await self._client.zadd(
            self._keys(slot.user)[1], {slot.id: time.time() + LEASE_SECONDS}, xx=True
        )

    async def release(self, slot: Slot, *, refund: bool = False) -> None:
        count, active, window = self._keys(slot.user)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(active, slot.id)
            if refund:
                pipe.zrem(window, f"{slot.id}:{slot.size}")
                if slot.counted:
                    pipe.decr(count)
            await pipe.execute()

    async def usage(self, user: str, window_seconds: int) -> Usage:
        state = await self._state(self._client, user, time.time(), window_seconds)
        return state.usage()

    async def close(self) -> None:
        await self._client.aclose()

    async def _state(
        self, client: redis.Redis | redis.client.Pipeline, user: str, now: float, window: int
    ) -> State:
        count, active, charged = self._keys(user)
        downloads = int(await client.get(count) or 0)
        slots = cast(list[bytes], await client.zrangebyscore(active, now, "+inf"))
        entries = cast(
            list[tuple[bytes, float]],
            await client.zrangebyscore(charged, now - window, "+inf", withscores=True),
        )
        return State(
            downloads=downloads,
            active={slot.decode() for slot in slots},
            window=deque((at, int(member.rsplit(b":", 1)[1])) for member, at in entries),
        )

    def _keys(self, user: str) -> tuple[str, str, str]:
        base = f"{self._prefix}{user}"
        return f"{base}:count", f"{base}:active", f"{base}:window"
