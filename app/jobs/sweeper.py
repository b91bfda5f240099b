"""The sweeper: expires unfinished uploads, finishes interrupted completions, frees bytes.

Every step is safe to run on several instances at once: state changes are compare-and-set in
the database (one instance wins, the others see the row changed), and freeing bytes is
idempotent. Work that a request holds (its lock is taken) is left for the next round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

from app.context import Context
from app.db import uploads as queries
from app.db.uploads import EXPIRED
from app.locks.base import LockTimeout
from app.tus import lifecycle

BATCH = 200
log = logging.getLogger("tusgate.sweeper")


@dataclass
class Report:
    expired: int = 0
    completed: int = 0
    released: int = 0


async def sweep(ctx: Context) -> Report:
    report = Report()
    for upload in await queries.expired(ctx.db, lifecycle.now(), BATCH):
        try:
            async with ctx.locker.hold(upload.id, wait=0, request_release=False):
                if await queries.end(ctx.db, upload, EXPIRED):
                    await lifecycle.release(ctx, upload)
                    report.expired += 1
        except LockTimeout:
            continue  # a PATCH is writing to it right now, so it is not idle after all
    for upload in await queries.completing(ctx.db, BATCH):
        await lifecycle.resume_completion(ctx, upload.id)
        report.completed += 1
    for upload in await queries.unreleased(ctx.db, BATCH):
        await lifecycle.release(ctx, upload)
        report.released += 1
    return report


async def run_periodically(ctx: Context) -> None:
    while True:
        try:
            report = await sweep(ctx)
            if report.expired or report.completed or report.released:
                log.info("sweep: %s", report)
        except Exception:
            log.exception("sweep failed; trying again next round")
        await anyio.sleep(ctx.settings.sweep_interval_seconds)
