"""Availability and restores: bringing a file that only cold locations hold into the cache.

A file is *online* when a hot location holds it, *cached* when the restore cache holds a valid
copy, *restoring* while an instance brings it there, *cold* when only cold locations hold it.
``start`` claims the restore in the database (so concurrent requests, on any instance, share
one) and runs it in the background: ask the best cold location to restore the object (S3
RestoreObject, the filesystem's restore area), wait until it is readable, copy it into the cache
checking its SHA-256, and mark it ready for ``cache_ttl_hours``. The instance beats a heartbeat
while it works; if it dies, the claim goes stale and the next request starts over.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio

from app import metrics
from app.context import Context
from app.db import cache as cache_queries
from app.db.audit import SYSTEM, Event
from app.db.cache import RESTORING, CacheEntry
from app.db.downloads import StoredCopy
from app.download.choice import cold_copies, hot_copies
from app.files import catalogue
from app.files.copy import copy_verified, new_id
from app.settings import CACHE, Settings
from app.storage.base import Restorer
from app.storage.errors import StorageError
from app.tus.lifecycle import now

ONLINE, CACHED, RESTORING_STATE, COLD, UNAVAILABLE = (
    "online",
    "cached",
    "restoring",
    "cold",
    "unavailable",
)
log = logging.getLogger("tusgate.restore")


@dataclass(frozen=True)
class Availability:
    state: str
    entry: CacheEntry | None = None  # the cache's entry, when it was looked up

    @property
    def available(self) -> bool:
        return self.state in (ONLINE, CACHED)

    @property
    def expires_at(self) -> datetime | None:
        """When the cached copy leaves the cache."""
        return self.entry.expires_at if self.state == CACHED and self.entry else None


def stale_after(settings: Settings) -> timedelta:
    """How long a restore's heartbeat may be silent before another instance takes it over."""
    return timedelta(seconds=max(3 * settings.restore_poll_seconds, 30.0))


def retry_after(settings: Settings) -> int:
    """Seconds a client should wait before asking again about a restore in progress."""
    return max(1, math.ceil(settings.restore_poll_seconds))


async def availability(ctx: Context, sha256: str, copies: Sequence[StoredCopy]) -> Availability:
    if hot_copies(copies, ctx.settings):
        return Availability(ONLINE)
    moment = now()
    entry = await cache_queries.get(ctx.db, sha256)
    if entry is not None and entry.readable(moment):
        return Availability(CACHED, entry)
    if not cold_copies(copies, ctx.settings):
        return Availability(UNAVAILABLE, entry)
    if entry is not None and entry.state == RESTORING and not _stale(ctx, entry, moment):
        return Availability(RESTORING_STATE, entry)
    return Availability(COLD, entry)


async def start(ctx: Context, sha256: str, size: int, copies: Sequence[StoredCopy]) -> None:
    """Start restoring a cold file into the cache, unless it is there or on its way.

    Raises ``CacheFull`` when the cache cannot take it now.
    """
    cold = cold_copies(copies, ctx.settings)
    if not cold:
        return
    moment = now()
    wanted = CacheEntry(sha256, RESTORING, cold[0].location, new_id(sha256), size, moment, None)
    claim = await cache_queries.claim(
        ctx.db,
        wanted,
        stale_before=moment - stale_after(ctx.settings),
        max_bytes=ctx.settings.cache_max_bytes,
    )
    if claim is None:
        return
    metrics.RESTORES_STARTED.inc()
    await catalogue.delete_copies(ctx, claim.evicted)
    ctx.spawn(lambda: _restore(ctx, claim.entry, cold))


async def _restore(ctx: Context, entry: CacheEntry, cold: Sequence[StoredCopy]) -> None:
    lost = anyio.Event()
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_beat, ctx, entry, lost, tasks.cancel_scope)
            restored = await _first_restored(ctx, entry, cold)
            tasks.cancel_scope.cancel()
    except Exception:
        log.exception("restore of %s failed", entry.sha256)
        restored = None
    if lost.is_set():
        metrics.RESTORES_FINISHED.labels("taken over").inc()
        if restored is not None:
            await ctx.stores[CACHE].delete(restored[1])
        return  # another instance took the restore over; its copy will be the one
    if restored is None:
        metrics.RESTORES_FINISHED.labels("failed").inc()
        await catalogue.delete_copies(ctx, await cache_queries.forget(ctx.db, [entry], now()))
        return
    metrics.RESTORES_FINISHED.labels("restored").inc()
    source, key = restored
    moment = now()
    expires_at = moment + timedelta(hours=ctx.settings.cache_ttl_hours)
    detail = {"location": source, "size": entry.size}
    event = Event("file.restored", SYSTEM, sha256=entry.sha256, detail=detail)
    if not await cache_queries.ready(ctx.db, entry, key, moment, expires_at, event):
        await ctx.stores[CACHE].delete(key)  # the file went meanwhile


async def _first_restored(
    ctx: Context, entry: CacheEntry, cold: Sequence[StoredCopy]
) -> tuple[str, str] | None:
    """Restore from the best cold copy that can be restored into the cache: the location it
    came from and its key in the cache."""
    for copy in cold:
        store = ctx.stores[copy.location]
        try:
            if isinstance(store, Restorer):
                days = ctx.settings.location(copy.location).restore_days
                await store.restore(copy.store_key, days)
                await _until_restored(store, copy.store_key, ctx.settings.restore_poll_seconds)
            key = await copy_verified(
                store, copy.store_key, ctx.stores[CACHE], entry.store_key, entry.size, entry.sha256
            )
        except StorageError as exc:
            log.warning("cannot restore %s from %r: %r", entry.sha256, copy.location, exc)
            continue
        return copy.location, key
    return None


async def _until_restored(store: Restorer, key: str, poll_seconds: float) -> None:
    """Ask the location every ``poll_seconds`` (it has no way to tell us)."""
    while True:
        if await store.restored(key):
            return
        await anyio.sleep(poll_seconds)


async def _beat(
    ctx: Context, entry: CacheEntry, lost: anyio.Event, scope: anyio.CancelScope
) -> None:
    """Renew the claim while the restore runs; stop the restore if the claim was lost."""
    while True:
        await anyio.sleep(ctx.settings.restore_poll_seconds)
        if not await cache_queries.heartbeat(ctx.db, entry, now()):
            lost.set()
            scope.cancel()
            return


def _stale(ctx: Context, entry: CacheEntry, moment: datetime) -> bool:
    return entry.claimed_at < moment - stale_after(ctx.settings)
