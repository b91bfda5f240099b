"""Storage quotas: how many bytes, uploads in progress and bytes per file a user may hold.

Usage is derived, never counted: the sizes of the files a user owns (a file shared with others
counts once per owner) plus what the user's unfinished uploads reserve (``uploads.reserved``:
the length, or for a deferred length what the upload may grow to during the PATCH in
progress). Termination, expiry and deletion release usage simply by changing state.

Every check that adds usage runs in one transaction that first locks the user's row of
``quotas`` (an upsert: a row lock on PostgreSQL, the single write lock on SQLite), so two
creations racing for the last bytes of a quota are serialised and cannot both pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from databases import Database

from app.db import upsert
from app.db.schema import file_owners, files, quotas, uploads
from app.db.uploads import COMPLETING, RECEIVING, Upload
from app.settings import Settings

LIMITS = ("max_bytes", "max_uploads", "max_file_size")


class QuotaExceeded(Exception):
    """A request would take a user past a limit; the message names the limit and the usage."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_uploads: int
    max_file_size: int


@dataclass(frozen=True)
class Usage:
    stored: int  # bytes of the files owned
    reserved: int  # bytes reserved by unfinished uploads
    uploads: int  # unfinished uploads

    @property
    def bytes(self) -> int:
        return self.stored + self.reserved


def defaults(settings: Settings) -> Limits:
    return Limits(
        max_bytes=settings.quota_max_bytes,
        max_uploads=settings.quota_max_uploads,
        max_file_size=settings.quota_max_file_size,
    )


async def overrides(
    db: Database, owner: str, names: tuple[str, ...] = LIMITS
) -> dict[str, int | None]:
    """The limits an admin set for ``owner`` (None: the default), of the columns ``names``."""
    row = await db.fetch_one(quotas.select().where(quotas.c.owner == owner))
    return {name: None if row is None else row[name] for name in names}


async def limits(db: Database, settings: Settings, owner: str) -> Limits:
    chosen = await overrides(db, owner)
    return replace(defaults(settings), **{k: v for k, v in chosen.items() if v is not None})


async def set_overrides(
    db: Database, owner: str, values: dict[str, int | None], at: datetime
) -> None:
    await db.execute(
        upsert(db, quotas)
        .values(owner=owner, updated_at=at, **values)
        .on_conflict_do_update(index_elements=["owner"], set_={**values, "updated_at": at})
    )


async def usage(db: Database, owner: str, *, excluding: str | None = None) -> Usage:
    """One query; state compared, not listed, so that its SQL is compiled once (db/compiled.py)."""
    unfinished = sa.and_(
        uploads.c.owner == owner,
        sa.or_(uploads.c.state == RECEIVING, uploads.c.state == COMPLETING),
    )
    if excluding is not None:
        unfinished = sa.and_(unfinished, uploads.c.id != excluding)
    stored = (
        sa.select(sa.func.coalesce(sa.func.sum(files.c.size), 0))
        .select_from(file_owners.join(files, files.c.sha256 == file_owners.c.sha256))
        .where(file_owners.c.owner == owner)
        .scalar_subquery()
    )
    reserved = (
        sa.select(sa.func.coalesce(sa.func.sum(uploads.c.reserved), 0))
        .where(unfinished)
        .scalar_subquery()
    )
    count = sa.select(sa.func.count()).select_from(uploads).where(unfinished).scalar_subquery()
    row = await db.fetch_one(sa.select(stored, reserved, count))
    assert row is not None
    return Usage(stored=int(row[0]), reserved=int(row[1]), uploads=int(row[2]))


@asynccontextmanager
async def guarded(db: Database, owner: str) -> AsyncIterator[None]:
    """A transaction holding the user's quota lock: check, then record, inside it."""
    async with db.transaction():
        await db.execute(
            upsert(db, quotas)
            .values(owner=owner)
            .on_conflict_do_update(index_elements=["owner"], set_={"owner": owner})
        )
        yield


def check(limits: Limits, current: Usage, *, size: int | None, adding: int, uploads: int) -> None:
    """Raise ``QuotaExceeded`` if adding ``adding`` bytes and ``uploads`` uploads (of a file of
    ``size`` bytes, when known) would break a limit."""
    if size is not None and size > limits.max_file_size:
        raise QuotaExceeded(
            f"file size limit: {size} bytes exceed max_file_size {limits.max_file_size}"
        )
    if uploads and current.uploads + uploads > limits.max_uploads:
        raise QuotaExceeded(
            f"uploads in progress limit: {current.uploads} of max_uploads {limits.max_uploads}"
        )
    if current.bytes + adding > limits.max_bytes:
        raise QuotaExceeded(
            f"storage quota: {current.bytes} bytes used + {adding} > max_bytes {limits.max_bytes}"
        )


async def admit(db: Database, settings: Settings, owner: str, length: int | None) -> None:
    """Check a new upload of ``length`` bytes (None: deferred) against the user's limits."""
    allowed = await limits(db, settings, owner)
    check(allowed, await usage(db, owner), size=length, adding=length or 0, uploads=1)


@asynccontextmanager
async def reserving(
    db: Database, settings: Settings, owner: str, length: int | None
) -> AsyncIterator[None]:
    """Admit a new upload under the user's lock; the block records it before the lock goes."""
    async with guarded(db, owner):
        await admit(db, settings, owner, length)
        yield


async def reserve_growth(
    db: Database, settings: Settings, upload: Upload, total: int | None
) -> int:
    """Reserve room for a deferred-length upload to grow during one PATCH.

    ``total`` is the size the upload will reach if known (declared length, or offset plus
    Content-Length); otherwise as much as the quota leaves. Returns the size the upload may
    reach in this PATCH; the commit shrinks the reservation back to what arrived.
    """
    async with guarded(db, upload.owner):
        allowed = await limits(db, settings, upload.owner)
        others = await usage(db, upload.owner, excluding=upload.id)
        if total is not None:
            check(allowed, others, size=total, adding=total, uploads=0)
            reserved = total
        else:
            room = min(allowed.max_bytes - others.bytes, allowed.max_file_size)
            reserved = max(room, upload.offset)
        await db.execute(
            uploads.update().where(uploads.c.id == upload.id).values(reserved=reserved)
        )
    return reserved
