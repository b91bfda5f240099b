"""Queries on the ``uploads`` table: the one source of truth for an upload's state.

Offsets only move forward, and only through compare-and-set updates, so two writers that both
believe they hold an upload can never both commit: the second finds the offset moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from databases import Database

from app.db.schema import uploads

RECEIVING = "receiving"
COMPLETING = "completing"
DONE = "done"
EXPIRED = "expired"
TERMINATED = "terminated"
# What an upload id can look like (they are made URL-safe and 32 long). Anything else names no
# upload, and is not even asked about: PostgreSQL refuses text holding NUL with an error.
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Upload:
    id: str
    owner: str
    state: str
    length: int | None
    offset: int
    location: str
    store_key: str | None
    created_at: datetime
    expires_at: datetime | None = None
    metadata: str = ""
    filename: str | None = None
    content_type: str | None = None
    concat: str | None = None
    partials: list[str] | None = None
    store_state: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None
    completed_at: datetime | None = None
    reserved: int = 0
    expected_sha256: str | None = None

    @property
    def is_final(self) -> bool:
        return self.concat == "final"

    @property
    def is_partial(self) -> bool:
        return self.concat == "partial"


def _from_row(row: Any) -> Upload:
    return Upload(
        id=row["id"],
        owner=row["owner"],
        state=row["state"],
        length=row["upload_length"],
        offset=row["upload_offset"],
        location=row["location"],
        store_key=row["store_key"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        metadata=row["metadata"],
        filename=row["filename"],
        content_type=row["content_type"],
        concat=row["concat"],
        partials=row["partials"],
        store_state=row["store_state"],
        sha256=row["sha256"],
        completed_at=row["completed_at"],
        reserved=row["reserved"],
        expected_sha256=row["expected_sha256"],
    )


async def insert(db: Database, upload: Upload) -> None:
    await db.execute(
        uploads.insert().values(
            id=upload.id,
            owner=upload.owner,
            state=upload.state,
            upload_length=upload.length,
            upload_offset=upload.offset,
            metadata=upload.metadata,
            filename=upload.filename,
            content_type=upload.content_type,
            concat=upload.concat,
            partials=upload.partials,
            location=upload.location,
            store_key=upload.store_key,
            store_state=upload.store_state,
            sha256=upload.sha256,
            created_at=upload.created_at,
            expires_at=upload.expires_at,
            completed_at=upload.completed_at,
            reserved=upload.reserved,
            expected_sha256=upload.expected_sha256,
        )
    )


async def get(db: Database, upload_id: str) -> Upload | None:
    if not ID.fullmatch(upload_id):
        return None
    row = await db.fetch_one(uploads.select().where(uploads.c.id == upload_id))
    return None if row is None else _from_row(row)


async def get_many(db: Database, upload_ids: list[str]) -> dict[str, Upload]:
    rows = await db.fetch_all(uploads.select().where(uploads.c.id.in_(upload_ids)))
    return {row["id"]: _from_row(row) for row in rows}


async def advance(
    db: Database,
    upload: Upload,
    new_offset: int,
    *,
    expires_at: datetime | None,
    length: int | None,
    reserved: int,
) -> bool:
    """Move the offset from ``upload.offset`` to ``new_offset`` (and set a deferred length).

    Also slides the expiry: an upload that keeps receiving bytes does not expire. False when
    the row changed under us (offset moved elsewhere, upload no longer receiving). A row already
    at ``new_offset`` counts as ours: a HEAD, which never waits for the lock, may have adopted
    the store's commit record in the moment between the store's commit and this update.
    """
    final = length if length is not None else upload.length
    values: dict[str, Any] = {
        "upload_offset": new_offset,
        "expires_at": expires_at,
        "reserved": reserved,
    }
    if length is not None:
        values["upload_length"] = length
    # Comparisons, not IN lists: a statement of fixed SQL is compiled once (db/compiled.py).
    state_allowed = uploads.c.state == RECEIVING
    if new_offset == final:
        values["state"] = COMPLETING
        state_allowed = sa.or_(state_allowed, uploads.c.state == COMPLETING)  # the HEAD saw it
    query = (
        uploads.update()
        .where(uploads.c.id == upload.id)
        .where(
            sa.or_(uploads.c.upload_offset == upload.offset, uploads.c.upload_offset == new_offset)
        )
        .where(state_allowed)
        .values(**values)
        .returning(uploads.c.id)
    )
    return await db.fetch_one(query) is not None


async def adopt_store_offset(db: Database, upload: Upload, store_offset: int) -> None:
    """The store is ahead of us (a crash between its commit and ours): take its offset."""
    values: dict[str, Any] = {"upload_offset": store_offset}
    if store_offset == upload.length:
        values["state"] = COMPLETING
    await db.execute(
        uploads.update()
        .where(uploads.c.id == upload.id)
        .where(uploads.c.upload_offset < store_offset)
        .where(uploads.c.state == RECEIVING)
        .values(**values)
    )


async def rewind_to_store_offset(db: Database, upload: Upload, store_offset: int) -> None:
    """The store lost what we recorded (power lost before its commit record reached the disk,
    or ``TUSGATE_FSYNC=false``): its bytes are what there is; the client sends the rest again."""
    await db.execute(
        uploads.update()
        .where(uploads.c.id == upload.id)
        .where(uploads.c.upload_offset > store_offset)
        .where(uploads.c.state == RECEIVING)
        .values(upload_offset=store_offset)
    )


async def finish(
    db: Database,
    upload_id: str,
    *,
    sha256: str | None,
    store_key: str | None,
    at: datetime,
    expires_at: datetime | None = None,
) -> bool:
    """Mark a completing upload done. A file upload hands its bytes to the catalogue
    (``store_key`` None); a partial upload keeps them for final uploads to use. False when the
    upload was not completing: another completion of it finished first."""
    query = (
        uploads.update()
        .where(uploads.c.id == upload_id)
        .where(uploads.c.state == COMPLETING)
        .values(
            state=DONE, sha256=sha256, store_key=store_key, completed_at=at, expires_at=expires_at
        )
        .returning(uploads.c.id)
    )
    return await db.fetch_one(query) is not None


async def finals_waiting_for(db: Database, partial: Upload) -> list[Upload]:
    """The owner's unfinished final uploads that name ``partial`` (concatenation-unfinished)."""
    rows = await db.fetch_all(
        uploads.select()
        .where(uploads.c.owner == partial.owner)
        .where(uploads.c.concat == "final")
        .where(uploads.c.state == RECEIVING)
    )
    waiting = (_from_row(row) for row in rows)
    return [final for final in waiting if partial.id in (final.partials or [])]


async def set_reserved(db: Database, upload_id: str, reserved: int) -> None:
    await db.execute(uploads.update().where(uploads.c.id == upload_id).values(reserved=reserved))


async def hold_bytes(db: Database, upload_id: str, store_key: str, state: dict[str, Any]) -> None:
    """Record where a new upload's bytes go, once its store created it."""
    await db.execute(
        uploads.update()
        .where(uploads.c.id == upload_id)
        .values(store_key=store_key, store_state=state)
    )


async def forget_bytes(db: Database, upload_id: str) -> None:
    """The upload's own bytes are gone (deleted as surplus, or moved into the catalogue)."""
    await db.execute(uploads.update().where(uploads.c.id == upload_id).values(store_key=None))


async def end(db: Database, upload: Upload, state: str) -> bool:
    """Move an upload to ``expired`` or ``terminated`` from the state it was read in.

    The store key stays until its bytes are freed, so an interrupted clean-up is found again.
    """
    query = (
        uploads.update()
        .where(uploads.c.id == upload.id)
        .where(uploads.c.state == upload.state)
        .values(state=state, expires_at=None)
        .returning(uploads.c.id)
    )
    return await db.fetch_one(query) is not None


async def unreleased(db: Database, limit: int) -> list[Upload]:
    """Ended uploads whose bytes were not freed yet (a crash cut their clean-up short)."""
    rows = await db.fetch_all(
        uploads.select()
        .where(uploads.c.store_key.is_not(None))
        .where(uploads.c.state.in_([EXPIRED, TERMINATED]))
        .limit(limit)
    )
    return [_from_row(row) for row in rows]


async def expired(db: Database, now: datetime, limit: int) -> list[Upload]:
    """Unfinished uploads, and done partial uploads, past their expiry."""
    rows = await db.fetch_all(
        uploads.select()
        .where(uploads.c.state.in_([RECEIVING, DONE]))
        .where(uploads.c.expires_at < now)
        .order_by(uploads.c.expires_at)
        .limit(limit)
    )
    return [_from_row(row) for row in rows]


async def completing(db: Database, limit: int) -> list[Upload]:
    """Uploads whose bytes are all stored and whose completion is under way or was cut short."""
    rows = await db.fetch_all(uploads.select().where(uploads.c.state == COMPLETING).limit(limit))
    return [_from_row(row) for row in rows]
