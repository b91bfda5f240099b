"""The tiering job: copies files into cold locations, and drops hot copies once they are cold.

Per the settings of each location: a cold one with ``copy_after_days`` receives a copy of every
file that age (0: at once, a backup); a hot one with ``drop_after_days`` loses its copy of a
file that age once a cold location holds one. Copies are verified against the SHA-256 as they
are made (``files/copy.py``).

Safe on every instance at once: a file is copied under a lock of the locker (Redis when
configured), the catalogue admits one copy per location (a loser deletes its bytes), and a hot
copy is dropped in a transaction that checks a cold copy still exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.context import Context
from app.db import audit
from app.db import downloads as download_queries
from app.db import tiering as queries
from app.db.audit import SYSTEM, Event
from app.db.files import Copy
from app.download.choice import hot_copies
from app.files import catalogue
from app.files.copy import copy_verified, new_id
from app.locks.base import LockTimeout
from app.settings import COLD, HOT, LocationSettings
from app.storage.errors import StorageError
from app.tus.lifecycle import now

BATCH = 100
log = logging.getLogger("tusgate.tiering")


@dataclass
class Report:
    copied: int = 0
    dropped: int = 0
    failed: int = 0


async def tier(ctx: Context, moment: datetime | None = None) -> Report:
    """One round; ``moment`` can be set to tier as if at another time (tests, previews)."""
    moment = moment or now()
    report = Report()
    cold = [location for location in ctx.settings.locations if location.kind == COLD]
    for location in cold:
        if location.copy_after_days is not None:
            await _copy_into(ctx, location, moment, report)
    cold_names = [location.name for location in cold]
    for location in ctx.settings.locations:
        if location.kind == HOT and location.drop_after_days is not None and cold_names:
            before = moment - timedelta(days=location.drop_after_days)
            for copy in await queries.droppable(ctx.db, location.name, before, cold_names, BATCH):
                dropped = await queries.drop_copy(
                    ctx.db, copy.sha256, location.name, cold_names, now()
                )
                if dropped is not None:
                    await catalogue.delete_copies(ctx, [dropped])
                    report.dropped += 1
    return report


async def _copy_into(
    ctx: Context, location: LocationSettings, moment: datetime, report: Report
) -> None:
    assert location.copy_after_days is not None
    before = moment - timedelta(days=location.copy_after_days)
    hot = [known.name for known in ctx.settings.locations if known.kind == HOT]
    for missing in await queries.missing_in(ctx.db, location.name, hot, before, BATCH):
        try:
            async with ctx.locker.hold(
                f"tier:{location.name}:{missing.sha256}", wait=0, request_release=False
            ):
                if await _copy_one(ctx, location, missing):
                    report.copied += 1
        except LockTimeout:
            continue  # another instance is copying it
        except StorageError as exc:
            log.warning("cannot copy %s into %r: %r", missing.sha256, location.name, exc)
            report.failed += 1


async def _copy_one(ctx: Context, location: LocationSettings, missing: queries.Missing) -> bool:
    copies = await download_queries.copies(ctx.db, missing.sha256)
    if any(copy.location == location.name for copy in copies):
        return False  # copied meanwhile
    for source in hot_copies(copies, ctx.settings):
        target = ctx.stores[location.name]
        try:
            key = await copy_verified(
                ctx.stores[source.location],
                source.store_key,
                target,
                new_id(missing.sha256),
                missing.size,
                missing.sha256,
            )
        except StorageError as exc:
            log.warning("copy of %s in %r unreadable: %r", missing.sha256, source.location, exc)
            continue
        held = await queries.add_copy(ctx.db, missing.sha256, location.name, key, now())
        if held is None:
            await target.delete(key)
            return False
        if held:
            await catalogue.protect(ctx, [Copy(location.name, key)], held=True)
        await audit.record(
            ctx.db,
            Event(
                "file.tiered",
                SYSTEM,
                sha256=missing.sha256,
                detail={"from": source.location, "to": location.name},
            ),
        )
        return True
    return False
