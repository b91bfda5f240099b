"""The sweeper: expires uploads and files, finishes interrupted completions, frees bytes.

Each round: unfinished uploads past their expiry are ended and their parts aborted; ownerships
past the retention (and not on legal hold) are removed, and a file whose last owner went is
deleted; completions cut short by a crash are finished; files leave the restore cache when their
time there is up (and restores whose instance died are given up); bytes whose deletion was
interrupted are deleted; unfinished uploads in the store whose row ended without learning of
them (a crash between their creation in the store and their row's update) are aborted. Every
step is safe on several instances at once: state changes are conditional in the database (one
instance wins each row, the others see it gone), and deleting bytes is idempotent. Work a
request holds (its lock is taken) is left for the next round."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from app.context import Context
from app.db import audit
from app.db import cache as cache_queries
from app.db import files as file_queries
from app.db import uploads as queries
from app.db.audit import SYSTEM, Event
from app.db.uploads import COMPLETING, EXPIRED, RECEIVING, Upload
from app.files import catalogue, restore
from app.locks.base import LockTimeout
from app.storage.base import Lister, Store, Unfinished
from app.tus import lifecycle

BATCH = 200
log = logging.getLogger("tusgate.sweeper")


@dataclass
class Report:
    expired: int = 0  # unfinished uploads
    files_expired: int = 0  # ownerships past the retention
    completed: int = 0
    released: int = 0  # bytes freed after an interrupted clean-up
    reclaimed: int = 0  # unfinished uploads in a store that no upload row held
    cache_expired: int = 0  # restored files past their time in the cache, abandoned restores


async def sweep(ctx: Context, now: datetime | None = None) -> Report:
    """One round; ``now`` can be set to sweep as if at another time (tests, previews)."""
    moment = now or lifecycle.now()
    report = Report()
    for upload in await queries.expired(ctx.db, moment, BATCH):
        try:
            async with ctx.locker.hold(upload.id, wait=0, request_release=False):
                if await queries.end(ctx.db, upload, EXPIRED):
                    await lifecycle.release(ctx, upload)
                    await audit.record(
                        ctx.db,
                        Event("upload.expired", SYSTEM, owner=upload.owner, upload_id=upload.id),
                    )
                    report.expired += 1
        except LockTimeout:
            continue  # a PATCH is writing to it right now, so it is not idle after all
    for ownership in await file_queries.expired_ownerships(ctx.db, moment, BATCH):
        event = Event("file.expired", SYSTEM, owner=ownership.owner, sha256=ownership.sha256)
        if await catalogue.drop_owner(ctx, ownership.sha256, ownership.owner, event):
            report.files_expired += 1
    for upload in await queries.completing(ctx.db, BATCH):
        await lifecycle.resume_completion(ctx, upload.id)
        report.completed += 1
    for upload in await queries.unreleased(ctx.db, BATCH):
        await lifecycle.release(ctx, upload)
        report.released += 1
    report.reclaimed += await reclaim(ctx)
    stale_before = moment - restore.stale_after(ctx.settings)
    leaving = await cache_queries.expired(ctx.db, moment, stale_before, BATCH)
    gone = await cache_queries.forget(ctx.db, leaving, moment)
    await catalogue.delete_copies(ctx, gone)
    report.cache_expired += len(gone)
    pending = await file_queries.pending(ctx.db, BATCH)
    await catalogue.delete_copies(ctx, pending)
    report.released += len(pending)
    return report


async def reclaim(ctx: Context) -> int:
    """Abort the unfinished uploads of the upload store whose row ended, or names others: a
    process killed between creating one in the store and recording it in the row (which comes
    first, see ``lifecycle.insert``) left them. One that no row names is no upload's (a copy
    into the store) and is left alone; the bucket's own rules are the line behind that."""
    store = ctx.upload_store
    if not isinstance(store, Lister):
        return 0
    reclaimed = 0
    batch: list[Unfinished] = []
    async for unfinished in store.unfinished():
        batch.append(unfinished)
        if len(batch) == BATCH:
            reclaimed += await _abort_unheld(ctx, store, batch)
            batch = []
    if batch:
        reclaimed += await _abort_unheld(ctx, store, batch)
    return reclaimed


async def _abort_unheld(ctx: Context, store: Store, batch: list[Unfinished]) -> int:
    rows = await queries.get_many(ctx.db, [unfinished.upload_id for unfinished in batch])
    unheld = [u for u in batch if u.upload_id in rows and not _holds(rows[u.upload_id], u)]
    for unfinished in unheld:
        await store.abort(unfinished.upload)
    return len(unheld)


def _holds(row: Upload, unfinished: Unfinished) -> bool:
    """Whether ``row`` is (or is about to be) filling ``unfinished``."""
    if row.state not in (RECEIVING, COMPLETING):
        return False
    if row.store_key is None:
        return True  # created in the store a moment ago, about to be recorded
    return row.store_key == unfinished.upload.key and all(
        row.store_state.get(name) == value for name, value in unfinished.upload.state.items()
    )
