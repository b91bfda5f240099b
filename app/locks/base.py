"""The lock contract every locker keeps, whatever its backend.

A *locker* hands out exclusive *leases* on string keys (the tus layer uses the upload id). At most
one lease per key exists at any time across every process sharing the backend, so two PATCH
requests for one upload can never interleave their writes, even on two gateway instances.

Holding a lease is cooperative in one respect. When a request for a held key arrives, the
requester asks the holder to let go (`request_release=True`, the default) and waits. The holder
learns of it through the callbacks it registered with `Lease.on_release_requested`; the upload
handler answers by ending its PATCH early (saving the bytes received so far), which exits the
`hold` block and releases the key. This is what tusd calls a lock release request: a client that
reconnects after a network cut gets its upload back within seconds, instead of waiting for the
proxy to notice that the old connection is dead.

Leases also end on their own. A distributed lease lives for a time-to-live that its holder keeps
renewing; if the holder's process dies, the lease expires and the key is free again. If the holder
cannot renew in time (backend unreachable, key taken away) the lease becomes `lost`: the holder is
no longer protected and must stop writing as soon as it can. Losing a lease also runs the release
callbacks, so the one code path that stops a PATCH serves both cases.

Usage::

    async with locker.hold(upload_id, wait=5.0) as lease:
        lease.on_release_requested(stop_reading.set)
        ...  # stream the request body; stop early once `stop_reading` is set
        if lease.lost:
            ...  # do not commit anything that relies on being alone

Errors: `LockTimeout` when the key stays held past `wait` (the tus layer answers 423 Locked);
`LockUnavailable` when the backend cannot be reached (503). Nothing else leaves a locker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

logger = logging.getLogger(__name__)


class LockTimeout(Exception):
    """The key was still held by someone else when `wait` ran out."""


class LockUnavailable(Exception):
    """The lock backend cannot be reached: nobody can tell whether the key is free."""


class Lease(Protocol):
    """Proof of holding one key, valid inside its `hold` block."""

    key: str
    """The key held, as given to `Locker.hold`."""

    def on_release_requested(self, callback: Callable[[], None]) -> None:
        """Run `callback` once when someone asks for this key, or when the lease is lost.

        If that has already happened, `callback` runs at once, before this method returns. Several
        callbacks may be registered; each runs at most once, on the event loop, and must not
        block: set an event or cancel a scope, then let the holder unwind. An exception from a
        callback is logged and does not stop the others.
        """
        ...

    @property
    def lost(self) -> bool:
        """True once the holder can no longer count on being alone with the key.

        Becomes true when the lease could not be renewed in time or was found taken by someone
        else. It never turns false again. Always false for an in-process locker.
        """
        ...


class Locker(Protocol):
    """A source of exclusive leases, shared by every instance that uses the same backend.

    `start` before the first `hold` (it connects and begins listening for release requests);
    `close` at shutdown, which stops every background task. Leases still held at `close` are
    not released: they expire like those of a crashed process.
    """

    async def start(self) -> None:
        """Connect to the backend; raises `LockUnavailable` if it cannot be reached."""
        ...

    async def close(self) -> None:
        """Stop background work and disconnect. Idempotent."""
        ...

    async def held(self, key: str) -> bool:
        """Whether someone holds `key` right now: a snapshot, for reporting, never for deciding
        who may write (only `hold` does that)."""
        ...

    def hold(
        self, key: str, *, wait: float, request_release: bool = True
    ) -> AbstractAsyncContextManager[Lease]:
        """Hold `key` for the duration of an `async with` block.

        If the key is free the lease is granted at once. If it is held (by this instance or any
        other) and `request_release` is true, the holder is asked to let go; then the call waits
        up to `wait` seconds for the key (`wait=0` tries exactly once) and raises `LockTimeout`
        when it is still held. Use `request_release=False` for requests that must not disturb a
        running upload (a HEAD that can answer from the database, a sweeper).

        The key is released when the block exits, however it exits, including on cancellation.
        Raises `LockUnavailable` if the backend cannot be reached while acquiring; a failure to
        release is logged, never raised, since the lease expires anyway.
        """
        ...


class ReleaseSignal:
    """The once-only callback list behind `Lease.on_release_requested`, shared by the lockers.

    Kept here so that every locker honours the same subtle promises: late registrations run at
    once, every callback runs at most once, and one failing callback cannot silence the others.
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self._fired = False

    @property
    def fired(self) -> bool:
        return self._fired

    def subscribe(self, callback: Callable[[], None]) -> None:
        if self._fired:
            _run(callback)
        else:
            self._callbacks.append(callback)

    def fire(self) -> None:
        if self._fired:
            return
        self._fired = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _run(callback)


def _run(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        logger.exception("lock release callback %r failed", callback)
