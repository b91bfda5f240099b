"""In-process locker: the embedded default, for a single gateway process.

Waiters sleep on the holder's `released` event rather than polling, and a release request is a
direct call into the holder's callbacks. Leases never expire and are never lost: if the process
dies, so does every lock it held.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio

from app.locks.base import LockTimeout, ReleaseSignal


class MemoryLease:
    def __init__(self, key: str) -> None:
        self.key = key
        self.release_signal = ReleaseSignal()
        self.released = anyio.Event()

    def on_release_requested(self, callback: Callable[[], None]) -> None:
        self.release_signal.subscribe(callback)

    @property
    def lost(self) -> bool:
        return False


class MemoryLocker:
    def __init__(self) -> None:
        self._held: dict[str, MemoryLease] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def held(self, key: str) -> bool:
        return key in self._held

    def hold(
        self, key: str, *, wait: float, request_release: bool = True
    ) -> AbstractAsyncContextManager[MemoryLease]:
        if wait < 0:
            raise ValueError(f"wait must be >= 0, not {wait}")
        return self._hold(key, wait, request_release)

    @asynccontextmanager
    async def _hold(
        self, key: str, wait: float, request_release: bool
    ) -> AsyncIterator[MemoryLease]:
        lease = await self._acquire(key, wait, request_release)
        try:
            yield lease
        finally:
            del self._held[key]
            lease.released.set()

    async def _acquire(self, key: str, wait: float, request_release: bool) -> MemoryLease:
        # The loop takes the key without awaiting once it is free, so wait=0 still succeeds on a
        # free key; several waiters woken by one release re-check, and all but one wait again.
        with anyio.move_on_after(wait):
            while (holder := self._held.get(key)) is not None:
                if request_release:
                    holder.release_signal.fire()
                await holder.released.wait()
            lease = MemoryLease(key)
            self._held[key] = lease
            return lease
        raise LockTimeout(f"{key!r} is still locked after {wait:g} s")
