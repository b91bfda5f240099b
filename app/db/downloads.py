"""Queries of the download front: a file as one reader sees it, and where its copies are.

A file's bytes are the same for every owner, but its name and type are each owner's own (as
they uploaded it), so a download is described for one reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from databases import Database

from app.db.schema import file_copies, file_owners, files


@dataclass(frozen=True)
class FileView:
    sha256: str
    size: int
    created_at: datetime
    owned: bool  # the reader owns the file; name and type are then theirs
    name: str | None
    content_type: str | None


@dataclass(frozen=True)
class StoredCopy:
    location: str
    store_key: str
    state: str


async def view(db: Database, sha256: str, reader: str) -> FileView | None:
    """The file with the reader's ownership if they have one; None if there is no such file."""
    ownership = sa.and_(file_owners.c.sha256 == files.c.sha256, file_owners.c.owner == reader)
    row = await db.fetch_one(
        sa.select(
            files.c.size,
            files.c.created_at,
            file_owners.c.owner,
            file_owners.c.name,
            file_owners.c.content_type,
        )
        .select_from(files.outerjoin(file_owners, ownership))
        .where(files.c.sha256 == sha256)
    )
    if row is None:
        return None
    return FileView(
        sha256=sha256,
        size=row["size"],
        created_at=row["created_at"],
        owned=row["owner"] is not None,
        name=row["name"],
        content_type=row["content_type"],
    )


async def copies(db: Database, sha256: str) -> list[StoredCopy]:
    rows = await db.fetch_all(
        sa.select(file_copies.c.location, file_copies.c.store_key, file_copies.c.state).where(
            file_copies.c.sha256 == sha256
        )
    )
    return [StoredCopy(row["location"], row["store_key"], row["state"]) for row in rows]
