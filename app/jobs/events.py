"""Events for downstream consumers (a malware scanner, an indexer…), on a Redis stream.

The audit trail is the outbox: every ``upload.completed``, ``file.deleted``, ``file.expired``
and ``file.restored`` is recorded there with the change it reports, and this job appends the
ones not published yet to the stream ``events_stream``, oldest first, moving a cursor (the last
audit id published) in the same Redis transaction — so an event is published once, and a crash
at any point loses none. Several instances may run it at once: the cursor is watched, and an
instance that finds it moved publishes nothing that round. Consumers read with consumer groups
(``XREADGROUP``) and acknowledge what they handled; like any at-least-once source, they should
treat a repeated event id as done.

Each entry has two fields: ``type`` (the action) and ``data``, a JSON object::

    {"id": 42, "type": "upload.completed", "at": "2026-11-22T10:00:00Z", "user": "alice",
     "sha256": "…", "upload_id": "…", "detail": {"size": 26214400, "duplicate": false}}
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import redis.asyncio as redis
from redis.exceptions import WatchError

from app import metrics, redis_pool
from app.context import Context
from app.db import audit
from app.db.audit import Event
from app.tus.lifecycle import now

log = logging.getLogger("tusgate.events")
ACTIONS = ("upload.completed", "file.deleted", "file.expired", "file.restored")
BATCH = 500
# Audit ids are taken before a transaction commits: only rows older than this are published,
# so that a row committing late cannot fall behind the cursor.
SETTLE = timedelta(seconds=2)


def payload(event: Event) -> str:
    return json.dumps(
        {
            "id": event.id,
            "type": event.action,
            "at": event.at and event.at.isoformat().replace("+00:00", "Z"),
            "user": event.owner or event.actor,
            "sha256": event.sha256,
            "upload_id": event.upload_id,
            "detail": event.detail,
        },
        separators=(",", ":"),
    )


class Publisher:
    """Appends new events to the stream; ``publish`` is one round."""

    def __init__(self, ctx: Context, url: str) -> None:
        self.ctx = ctx
        self.client: redis.Redis = redis_pool.client(url)
        self.stream = ctx.settings.events_stream
        self.cursor = f"{self.stream}:cursor"

    async def publish(self) -> int:
        async with self.client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(self.cursor)
                after = int(await pipe.get(self.cursor) or 0)
                events = await audit.following(self.ctx.db, after, ACTIONS, now() - SETTLE, BATCH)
                if not events:
                    return 0
                pipe.multi()  # type: ignore[no-untyped-call]
                for event in events:
                    pipe.xadd(
                        self.stream,
                        {"type": event.action, "data": payload(event)},
                        maxlen=self.ctx.settings.events_max_length,
                        approximate=True,
                    )
                pipe.set(self.cursor, str(events[-1].id))
                await pipe.execute()
            except WatchError:
                return 0  # another instance published this round
        metrics.EVENTS_PUBLISHED.inc(len(events))
        return len(events)

    async def close(self) -> None:
        await self.client.aclose()
