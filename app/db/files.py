"""Queries on the file catalogue: ``files``, ``file_copies`` and ``file_owners``.

A file is its SHA-256. Registering bytes that are already catalogued adds an owner and reports
that the new bytes are surplus; the database decides the race between two identical uploads
finishing at once (the primary key admits one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from databases import Database
from sqlalchemy.dialects import postgresql, sqlite

from app.db import uploads as upload_queries
from app.db.schema import file_copies, file_owners, files

ONLINE = "online"


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


def _insert(db: Database, table: sa.Table) -> Any:
    dialect = postgresql if db.url.dialect == "postgresql" else sqlite
    return dialect.insert(table)


async def register(db: Database, new: NewFile) -> bool:
    """Catalogue an upload's bytes and mark the upload done, atomically.

    Returns True when the bytes became the file's copy, False when the file already had one:
    the caller then deletes the surplus bytes (the upload row keeps their key until it has).
    """
    async with db.transaction():
        inserted = await db.fetch_one(
            _insert(db, files)
            .values(sha256=new.sha256, size=new.size, created_at=new.created_at)
            .on_conflict_do_nothing(index_elements=["sha256"])
            .returning(files.c.sha256)
        )
        await _lock_file(db, new.sha256)
        has_copy = inserted is None and await db.fetch_one(
            sa.select(file_copies.c.sha256).where(file_copies.c.sha256 == new.sha256)
        )
        keep = not has_copy
        if keep:
            await db.execute(
                file_copies.insert().values(
                    sha256=new.sha256,
                    location=new.location,
                    store_key=new.store_key,
                    state=ONLINE,
                    created_at=new.created_at,
                )
            )
        owner_values = {
            "name": new.name,
            "content_type": new.content_type,
            "upload_id": new.upload_id,
            "created_at": new.created_at,
            "expires_at": new.expires_at,
        }
        await db.execute(
            _insert(db, file_owners)
            .values(sha256=new.sha256, owner=new.owner, legal_hold=False, **owner_values)
            .on_conflict_do_update(index_elements=["sha256", "owner"], set_=owner_values)
        )
        await upload_queries.finish(
            db,
            new.upload_id,
            sha256=new.sha256,
            store_key=None if keep else new.store_key,
            at=new.created_at,
        )
    return keep


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


async def remove_owner(db: Database, sha256: str, owner: str) -> list[Copy] | None:
    """Drop one ownership. None if there was none; else the copies to delete physically,
    which is every copy once the last owner is gone (their rows go with it)."""
    async with db.transaction():
        await _lock_file(db, sha256)
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
        if remaining:
            return []
        rows = await db.fetch_all(
            file_copies.delete()
            .where(file_copies.c.sha256 == sha256)
            .returning(file_copies.c.location, file_copies.c.store_key)
        )
        await db.execute(files.delete().where(files.c.sha256 == sha256))
    return [Copy(row["location"], row["store_key"]) for row in rows]


async def _lock_file(db: Database, sha256: str) -> None:
    """Serialise registration and removal of one file (PostgreSQL; SQLite has one writer)."""
    await db.fetch_one(sa.select(files.c.sha256).where(files.c.sha256 == sha256).with_for_update())
