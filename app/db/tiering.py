"""Queries of the tiering job: files a cold location still lacks, hot copies it may drop.

Adding or dropping a copy locks the file's row first (as registration and deletion do), so a
copy never lands on a file that is being deleted, and a hot copy is dropped only while a cold
copy of the same file is still catalogued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from databases import Database

from app.db import upsert
from app.db.files import ONLINE, Copy, lock_file, schedule_deletion
from app.db.schema import file_copies, file_owners, files


@dataclass(frozen=True)
class Missing:
    sha256: str
    size: int


async def missing_in(
    db: Database, location: str, sources: Sequence[str], created_before: datetime, limit: int
) -> list[Missing]:
    """Files stored before ``created_before`` that have a copy in one of ``sources`` (the hot
    locations) and none in ``location``."""
    present = sa.select(file_copies.c.sha256).where(
        file_copies.c.sha256 == files.c.sha256, file_copies.c.location == location
    )
    source = file_copies.alias("source")
    readable = sa.select(source.c.sha256).where(
        source.c.sha256 == files.c.sha256,
        source.c.location.in_(list(sources)),
        source.c.state == ONLINE,
    )
    rows = await db.fetch_all(
        sa.select(files.c.sha256, files.c.size)
        .where(files.c.created_at <= created_before)
        .where(~present.exists(), readable.exists())
        .order_by(files.c.created_at)
        .limit(limit)
    )
    return [Missing(row["sha256"], row["size"]) for row in rows]


async def add_copy(db: Database, sha256: str, location: str, key: str, at: datetime) -> bool | None:
    """Catalogue a new copy. None if it was not added (the file is gone, or another instance
    added one first): the caller deletes its bytes. Else whether the file is on legal hold."""
    async with db.transaction():
        await lock_file(db, sha256)
        if await db.fetch_val(sa.select(files.c.size).where(files.c.sha256 == sha256)) is None:
            return None
        added = await db.fetch_one(
            upsert(db, file_copies)
            .values(sha256=sha256, location=location, store_key=key, state=ONLINE, created_at=at)
            .on_conflict_do_nothing(index_elements=["sha256", "location"])
            .returning(file_copies.c.sha256)
        )
        if added is None:
            return None
        held = await db.fetch_one(
            sa.select(file_owners.c.owner)
            .where(file_owners.c.sha256 == sha256, file_owners.c.legal_hold.is_(True))
            .limit(1)
        )
    return held is not None


@dataclass(frozen=True)
class HotCopy:
    sha256: str
    store_key: str


async def droppable(
    db: Database, location: str, created_before: datetime, cold: Sequence[str], limit: int
) -> list[HotCopy]:
    """Copies in ``location`` made before ``created_before`` of files a cold location holds."""
    kept_cold = _cold_copy_exists(cold)
    rows = await db.fetch_all(
        sa.select(file_copies.c.sha256, file_copies.c.store_key)
        .where(file_copies.c.location == location, file_copies.c.created_at <= created_before)
        .where(kept_cold)
        .limit(limit)
    )
    return [HotCopy(row["sha256"], row["store_key"]) for row in rows]


async def drop_copy(
    db: Database, sha256: str, location: str, cold: Sequence[str], at: datetime
) -> Copy | None:
    """Remove the copy in ``location`` if a cold copy still exists; the bytes to delete."""
    async with db.transaction():
        await lock_file(db, sha256)
        row = await db.fetch_one(
            file_copies.delete()
            .where(file_copies.c.sha256 == sha256, file_copies.c.location == location)
            .where(_cold_copy_exists(cold))
            .returning(file_copies.c.store_key)
        )
        if row is None:
            return None
        copy = Copy(location, row["store_key"])
        await schedule_deletion(db, copy, at)
    return copy


def _cold_copy_exists(cold: Sequence[str]) -> sa.ColumnElement[bool]:
    other = file_copies.alias("cold")
    return (
        sa.select(other.c.sha256)
        .where(other.c.sha256 == file_copies.c.sha256)
        .where(other.c.location.in_(list(cold)), other.c.state == ONLINE)
        .exists()
    )
