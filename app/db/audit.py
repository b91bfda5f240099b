"""The audit trail: who did what, when, from where — one row per event, never updated.

Actions: upload.created, upload.completed, upload.terminated, upload.expired, file.downloaded
(detail: the range served, the location read, whether through a link), file.linked,
file.deleted, file.expired, file.held, file.released, file.restored, file.tiered,
quota.changed. The actor is the user who acted, or "system" for the gateway's own jobs. Each
recorded action is counted in the metrics too, and some are published as events
(``jobs/events.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from databases import Database

from app import metrics
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
    # Both are set as the row is written, so read back only: the events job counts on ``at``
    # being the insert's moment, which is just before its commit (see ``following``).
    at: datetime | None = None
    id: int | None = None


async def record(db: Database, event: Event) -> None:
    await db.execute(
        audit.insert().values(
            at=datetime.now(UTC),
            action=event.action,
            actor=event.actor,
            owner=event.owner,
            upload_id=event.upload_id,
            sha256=event.sha256,
            client=event.client,
            detail=event.detail or None,
        )
    )
    metrics.observe(event.action)


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
    return [_event(row) for row in await db.fetch_all(query)]


async def following(
    db: Database, after_id: int, actions: Sequence[str], settled_before: datetime, limit: int
) -> list[Event]:
    """Events of ``actions`` after ``after_id``, oldest first, recorded before
    ``settled_before`` (so that an id taken by a transaction still committing cannot be
    overtaken: ids are handed out before commit). Sound because a published event is its
    transaction's last statement, stamped as it is inserted."""
    rows = await db.fetch_all(
        audit.select()
        .where(audit.c.id > after_id, audit.c.action.in_(list(actions)))
        .where(audit.c.at < settled_before)
        .order_by(audit.c.id)
        .limit(limit)
    )
    return [_event(row) for row in rows]


def _event(row: Any) -> Event:
    return Event(
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
