"""The audit trail: who did what, when, from where — one row per event, never updated.

Actions: upload.created, upload.completed, upload.terminated, upload.expired, file.downloaded
(detail: the range served, the location read, whether through a link), file.linked,
file.deleted, file.expired, file.held, file.released, quota.changed. The actor is the user who
acted, or "system" for the sweeper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from databases import Database

from app.db.schema import audit

SYSTEM = "system"


@dataclass(frozen=True)
class Event:
    action: str
    actor: str
    owner: str | None = None
    upload_id: str | None = None
    sha256: str | None = None
    client: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None


async def record(db: Database, event: Event) -> None:
    await db.execute(
        audit.insert().values(
            at=event.at,
            action=event.action,
            actor=event.actor,
            owner=event.owner,
            upload_id=event.upload_id,
            sha256=event.sha256,
            client=event.client,
            detail=event.detail or None,
        )
    )


@dataclass(frozen=True)
class Filter:
    user: str | None = None  # as actor or as owner
    sha256: str | None = None
    upload_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # the page cursor: events older than this one


async def search(db: Database, where: Filter, limit: int) -> list[Event]:
    """Newest first."""
    query = audit.select().order_by(audit.c.id.desc()).limit(limit)
    if where.user is not None:
        query = query.where(sa.or_(audit.c.actor == where.user, audit.c.owner == where.user))
    for column, value in (
        (audit.c.sha256, where.sha256),
        (audit.c.upload_id, where.upload_id),
        (audit.c.action, where.action),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(audit.c.at >= where.since)
    if where.until is not None:
        query = query.where(audit.c.at < where.until)
    if where.before_id is not None:
        query = query.where(audit.c.id < where.before_id)
    rows = await db.fetch_all(query)
    return [
        Event(
            id=row["id"],
            at=row["at"],
            action=row["action"],
            actor=row["actor"],
            owner=row["owner"],
            upload_id=row["upload_id"],
            sha256=row["sha256"],
            client=row["client"],
            detail=row["detail"] or {},
        )
        for row in rows
    ]
