"""Queries on the file catalogue: ``files``, ``file_copies`` and ``file_owners``.

A file is its SHA-256. Registering bytes that are already catalogued adds an owner and reports
that the new bytes are surplus; the database decides the race between two identical uploads
finishing at once (the primary key admits one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import sqlalchemy as sa
from databases import Database

from app.db import audit, upsert
from app.db import uploads as upload_queries
from app.db.audit import Event
from app.db.schema import cache_entries, file_copies, file_owners, files, pending_deletions
from app.settings import CACHE

ONLINE = "online"
SHA256 = re.compile(r"[0-9a-f]{64}")  # how files are named: lower-case hexadecimal


@dataclass(frozen=True)
class NewFile:
    sha256: str
    size: int
    location: str
    store_key: str
    owner: str
    name: str | None
    content_type: str | None
    upload_id: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class OwnedFile:
    sha256: str
    name: str | None
    size: int
    content_type: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Copy:
    location: str
    store_key: str


@dataclass(frozen=True)
class Registered:
    retired: Copy | None  # the older copy of the same bytes, to delete now
    held: bool  # the file is on legal hold: its new copy must be protected too


async def register(db: Database, new: NewFile, event: Event) -> Registered | None:
    """Catalogue an upload's bytes and mark the upload done, atomically, with ``event`` (its
    audit record, the outbox of published events) told whether the bytes were a duplicate:
    a crash can lose neither the event of a registered file nor make one of a file not there.

    A file is stored once per location. When the bytes are already there, the newest upload's
    copy replaces the older one (returned for deletion): the stored object is then never older
    than its newest ownership, so a bucket lifecycle rule counting from the object's creation
    can never expire it before its owners do. A new owner of a held file is held too.

    None, and nothing changed, when the upload is no longer completing: two completions of it
    raced (a holder that lost its lock) and the other one registered it. Registering it again
    would take its own object for an older copy and delete it.
    """
    async with db.transaction():
        if not await upload_queries.finish(
            db, new.upload_id, sha256=new.sha256, store_key=None, at=new.created_at
        ):
            return None
        # The file's row, written either way: the write locks it as ``lock_file`` does.
        await db.execute(
            upsert(db, files)
            .values(sha256=new.sha256, size=new.size, created_at=new.created_at)
            .on_conflict_do_update(index_elements=["sha256"], set_={"size": files.c.size})
        )
        found = await db.fetch_one(
            sa.select(
                sa.select(file_copies.c.store_key)
                .where(file_copies.c.sha256 == new.sha256)
                .where(file_copies.c.location == new.location)
                .scalar_subquery()
                .label("older"),
                sa.exists()
                .where(file_owners.c.sha256 == new.sha256)
                .where(file_owners.c.legal_hold.is_(True))
                .label("held"),
            )
        )
        assert found is not None  # a SELECT without FROM has its one row
        copy_values = {"store_key": new.store_key, "state": ONLINE, "created_at": new.created_at}
        await db.execute(
            upsert(db, file_copies)
            .values(sha256=new.sha256, location=new.location, **copy_values)
            .on_conflict_do_update(index_elements=["sha256", "location"], set_=copy_values)
        )
        retired = None
        if found["older"] is not None:
            retired = Copy(new.location, found["older"])
            await schedule_deletion(db, retired, new.created_at)
        held = bool(found["held"])
        owner_values = {
            "name": new.name,
            "content_type": new.content_type,
            "upload_id": new.upload_id,
            "created_at": new.created_at,
            "expires_at": new.expires_at,
        }
        await db.execute(
            upsert(db, file_owners)
            .values(sha256=new.sha256, owner=new.owner, legal_hold=held, **owner_values)
            .on_conflict_do_update(index_elements=["sha256", "owner"], set_=owner_values)
        )
        detail = {**event.detail, "duplicate": retired is not None}
        await audit.record(db, replace(event, detail=detail))
    return Registered(retired, held)


async def owned_by(db: Database, owner: str) -> list[OwnedFile]:
    query = (
        sa.select(
            file_owners.c.sha256,
            file_owners.c.name,
            files.c.size,
            file_owners.c.content_type,
            file_owners.c.created_at,
            file_owners.c.expires_at,
        )
        .select_from(file_owners.join(files, files.c.sha256 == file_owners.c.sha256))
        .where(file_owners.c.owner == owner)
        .order_by(file_owners.c.created_at.desc(), file_owners.c.sha256)
    )
    rows = await db.fetch_all(query)
    return [
        OwnedFile(
            sha256=row["sha256"],
            name=row["name"],
            size=row["size"],
            content_type=row["content_type"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )
        for row in rows
    ]


async def remove_owner(db: Database, sha256: str, owner: str, event: Event) -> list[Copy] | None:
    """Drop one ownership, recording ``event`` with it. None if there was none; else the
    copies to delete physically, which is every copy once the last owner is gone (their rows
    go with it), the restore cache's included.

    The event is the transaction's last statement: its id is taken at the insert, and the
    publisher (``jobs/events.py``) counts on a row's commit following its id closely."""
    async with db.transaction():
        await lock_file(db, sha256)
        removed = await db.fetch_one(
            file_owners.delete()
            .where(file_owners.c.sha256 == sha256)
            .where(file_owners.c.owner == owner)
            .returning(file_owners.c.owner)
        )
        if removed is None:
            return None
        remaining = await db.fetch_val(
            sa.select(sa.func.count())
            .select_from(file_owners)
            .where(file_owners.c.sha256 == sha256)
        )
        copies = [] if remaining else await _forget_file(db, sha256)
        await audit.record(db, event)
    return copies


async def _forget_file(db: Database, sha256: str) -> list[Copy]:
    """Remove a file that lost its last owner, scheduling the deletion of all its copies."""
    rows = await db.fetch_all(
        file_copies.delete()
        .where(file_copies.c.sha256 == sha256)
        .returning(file_copies.c.location, file_copies.c.store_key)
    )
    cached = await db.fetch_all(
        cache_entries.delete()
        .where(cache_entries.c.sha256 == sha256)
        .returning(cache_entries.c.store_key)
    )
    await db.execute(files.delete().where(files.c.sha256 == sha256))
    copies = [Copy(row["location"], row["store_key"]) for row in rows]
    copies += [Copy(CACHE, row["store_key"]) for row in cached]
    for copy in copies:
        await schedule_deletion(db, copy, datetime.now(UTC))
    return copies


async def schedule_deletion(db: Database, copy: Copy, at: datetime) -> None:
    """Record bytes to delete, in the transaction that unlinks them from the catalogue."""
    await db.execute(
        upsert(db, pending_deletions)
        .values(location=copy.location, store_key=copy.store_key, created_at=at)
        .on_conflict_do_nothing()
    )


async def forget_deletion(db: Database, copy: Copy) -> None:
    """The store has deleted the copy: its pending deletion is done."""
    await db.execute(
        pending_deletions.delete()
        .where(pending_deletions.c.location == copy.location)
        .where(pending_deletions.c.store_key == copy.store_key)
    )


async def pending(db: Database, limit: int) -> list[Copy]:
    rows = await db.fetch_all(pending_deletions.select().limit(limit))
    return [Copy(row["location"], row["store_key"]) for row in rows]


async def lock_file(db: Database, sha256: str) -> None:
    """Serialise registration and removal of one file, as the transaction's first write.

    An UPDATE locks the row on PostgreSQL and takes SQLite's single write lock: a transaction
    that read first and wrote later could deadlock there with another one doing the same, and
    SQLite fails one of them at once instead of letting it wait.
    """
    await db.execute(files.update().where(files.c.sha256 == sha256).values(size=files.c.size))


@dataclass(frozen=True)
class Ownership:
    sha256: str
    owner: str


async def expired_ownerships(db: Database, now: datetime, limit: int) -> list[Ownership]:
    """Ownerships past their retention and not on legal hold."""
    rows = await db.fetch_all(
        sa.select(file_owners.c.sha256, file_owners.c.owner)
        .where(file_owners.c.expires_at < now)
        .where(file_owners.c.legal_hold.is_(False))
        .order_by(file_owners.c.expires_at)
        .limit(limit)
    )
    return [Ownership(row["sha256"], row["owner"]) for row in rows]


async def set_hold(db: Database, sha256: str, held: bool) -> list[Copy] | None:
    """Put every ownership of a file on legal hold, or release it; returns the file's copies
    (whose stores may need telling), None if there is no such file."""
    async with db.transaction():
        rows = await db.fetch_all(
            file_owners.update()
            .where(file_owners.c.sha256 == sha256)
            .values(legal_hold=held)
            .returning(file_owners.c.owner)
        )
        if not rows:
            return None
        copies = await db.fetch_all(
            sa.select(file_copies.c.location, file_copies.c.store_key).where(
                file_copies.c.sha256 == sha256
            )
        )
    return [Copy(row["location"], row["store_key"]) for row in copies]
