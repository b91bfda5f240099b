"""Queries on ``cache_entries``: which files the restore cache holds, and who is restoring one.

Every change that moves bytes in or out of the cache runs in one transaction that first takes
the cache lock (an advisory lock on PostgreSQL, the single write lock on SQLite), so instances
that claim restores or room at the same moment see each other: the cache never promises more
bytes than ``max_bytes``, and one file is restored by one instance at a time. Bytes that leave
the cache are recorded in ``pending_deletions`` in the same transaction, like any copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from databases import Database

from app.db import audit
from app.db.audit import Event
from app.db.files import Copy, schedule_deletion
from app.db.schema import cache_entries
from app.settings import CACHE

RESTORING = "restoring"
READY = "ready"
_LOCK_ID = 0x7475_7363  # "tusc": the advisory lock of the cache's bookkeeping


class CacheFull(Exception):
    """The cache cannot make room for a file now (restores in progress fill it), or ever
    (``permanent``: the file is larger than the whole cache)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class CacheEntry:
    sha256: str
    state: str
    source: str  # the cold location restored from
    store_key: str
    size: int
    claimed_at: datetime
    expires_at: datetime | None

    def readable(self, now: datetime) -> bool:
        return self.state == READY and self.expires_at is not None and self.expires_at > now


@dataclass(frozen=True)
class Claim:
    """A restore this instance must now carry out, and the bytes it pushed out of the cache."""

    entry: CacheEntry
    evicted: list[Copy]


async def get(db: Database, sha256: str) -> CacheEntry | None:
    row = await db.fetch_one(cache_entries.select().where(cache_entries.c.sha256 == sha256))
    return None if row is None else _entry(row)


async def claim(
    db: Database, new: CacheEntry, *, stale_before: datetime, max_bytes: int
) -> Claim | None:
    """Take the restore of ``new.sha256`` unless someone holds it (heartbeat after
    ``stale_before``) or the cache has it ready; None then. Room is made by evicting the least
    recently read files; ``CacheFull`` if that is not enough."""
    async with db.transaction():
        await _lock(db)
        old = await get(db, new.sha256)
        if old is not None:
            if old.readable(new.claimed_at):
                return None
            if old.state == RESTORING and old.claimed_at >= stale_before:
                return None  # in hand elsewhere
        if new.size > max_bytes:
            raise CacheFull(
                f"the file ({new.size} bytes) is larger than the restore cache ({max_bytes})",
                permanent=True,
            )
        evicted = await _make_room(db, new, max_bytes)
        values = {
            "state": RESTORING,
            "source": new.source,
            "store_key": new.store_key,
            "size": new.size,
            "claimed_at": new.claimed_at,
            "expires_at": None,
            "last_read_at": None,
        }
        if old is None:
            await db.execute(cache_entries.insert().values(sha256=new.sha256, **values))
        else:
            await db.execute(
                cache_entries.update().where(cache_entries.c.sha256 == new.sha256).values(values)
            )
            evicted.append(Copy(CACHE, old.store_key))
        for copy in evicted:
            await schedule_deletion(db, copy, new.claimed_at)
    return Claim(new, evicted)


async def _make_room(db: Database, new: CacheEntry, max_bytes: int) -> list[Copy]:
    """Evict ready entries, least recently read first, until ``new`` fits."""
    used = await db.fetch_val(
        sa.select(sa.func.coalesce(sa.func.sum(cache_entries.c.size), 0)).where(
            cache_entries.c.sha256 != new.sha256
        )
    )
    excess = int(used) + new.size - max_bytes
    if excess <= 0:
        return []
    candidates = await db.fetch_all(
        sa.select(cache_entries.c.sha256, cache_entries.c.store_key, cache_entries.c.size)
        .where(cache_entries.c.state == READY)
        .where(cache_entries.c.sha256 != new.sha256)
        .order_by(cache_entries.c.last_read_at, cache_entries.c.sha256)
    )
    chosen = []
    for row in candidates:
        if excess <= 0:
            break
        chosen.append(row)
        excess -= row["size"]
    if excess > 0:
        raise CacheFull("the cache is full of restores in progress; retry later")
    await db.execute(
        cache_entries.delete().where(cache_entries.c.sha256.in_([row["sha256"] for row in chosen]))
    )
    return [Copy(CACHE, row["store_key"]) for row in chosen]


async def heartbeat(db: Database, entry: CacheEntry, now: datetime) -> bool:
    """Renew a claim; False if it was lost (another instance took the restore over)."""
    row = await db.fetch_one(
        cache_entries.update()
        .where(cache_entries.c.sha256 == entry.sha256)
        .where(cache_entries.c.store_key == entry.store_key)
        .where(cache_entries.c.state == RESTORING)
        .values(claimed_at=now)
        .returning(cache_entries.c.sha256)
    )
    return row is not None


async def ready(
    db: Database, entry: CacheEntry, key: str, now: datetime, expires_at: datetime, event: Event
) -> bool:
    """The restore is in the cache as ``key``, recorded with ``event``; False (and nothing
    recorded) if the claim was lost meanwhile.

    Until now ``store_key`` held the name the copy was created under, which identifies the
    claim; a store may have prefixed it to make the key.
    """
    async with db.transaction():
        row = await db.fetch_one(
            cache_entries.update()
            .where(cache_entries.c.sha256 == entry.sha256)
            .where(cache_entries.c.store_key == entry.store_key)
            .where(cache_entries.c.state == RESTORING)
            .values(state=READY, store_key=key, expires_at=expires_at, last_read_at=now)
            .returning(cache_entries.c.sha256)
        )
        if row is not None:
            await audit.record(db, event)
    return row is not None


async def touch(db: Database, sha256: str, now: datetime) -> None:
    """A read: the entry becomes the most recently used."""
    await db.execute(
        cache_entries.update().where(cache_entries.c.sha256 == sha256).values(last_read_at=now)
    )


async def forget(db: Database, entries: list[CacheEntry], at: datetime) -> list[Copy]:
    """Remove entries (a failed restore, a deleted file) if they are still as given; returns the
    bytes to delete, already recorded as pending deletions."""
    gone = []
    async with db.transaction():
        await _lock(db)
        for entry in entries:
            row = await db.fetch_one(
                cache_entries.delete()
                .where(cache_entries.c.sha256 == entry.sha256)
                .where(cache_entries.c.store_key == entry.store_key)
                .returning(cache_entries.c.store_key)
            )
            if row is not None:
                gone.append(Copy(CACHE, entry.store_key))
                await schedule_deletion(db, gone[-1], at)
    return gone


async def expired(
    db: Database, now: datetime, stale_before: datetime, limit: int
) -> list[CacheEntry]:
    """Ready entries past their expiry, and restores whose instance stopped beating."""
    rows = await db.fetch_all(
        cache_entries.select()
        .where(
            sa.or_(
                sa.and_(cache_entries.c.state == READY, cache_entries.c.expires_at <= now),
                sa.and_(
                    cache_entries.c.state == RESTORING, cache_entries.c.claimed_at < stale_before
                ),
            )
        )
        .limit(limit)
    )
    return [_entry(row) for row in rows]


async def _lock(db: Database) -> None:
    if db.url.dialect == "postgresql":
        await db.execute(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
    else:
        await db.execute(cache_entries.delete().where(sa.false()))  # takes the write lock


def _entry(row: Any) -> CacheEntry:
    return CacheEntry(
        sha256=row["sha256"],
        state=row["state"],
        source=row["source"],
        store_key=row["store_key"],
        size=row["size"],
        claimed_at=row["claimed_at"],
        expires_at=row["expires_at"],
    )
