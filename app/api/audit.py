"""``GET /api/audit`` (admins): the audit trail, newest first, paged and filterable.

Query parameters: ``user`` (as actor or owner), ``sha256``, ``upload_id``, ``action``,
``since`` / ``until`` (ISO 8601), ``limit`` (1-500, default 100) and ``before`` (the ``next``
cursor of the previous page).
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.access import admin, context, text
from app.api.responses import iso, json_response
from app.db import audit
from app.db.audit import Filter

MAX_LIMIT = 500
TEXTS = ("user", "sha256", "upload_id", "action")  # the filters on text columns


async def search(request: Request) -> Response:
    admin(request)
    params = request.query_params
    limit = _int(params.get("limit"), "limit", 100) or 0
    if not 1 <= limit <= MAX_LIMIT:
        raise HTTPException(400, f"limit must lie between 1 and {MAX_LIMIT}")
    texts = {name: text(params[name], name) for name in TEXTS if name in params}
    where = Filter(
        user=texts.get("user"),
        sha256=texts.get("sha256"),
        upload_id=texts.get("upload_id"),
        action=texts.get("action"),
        since=_time(params.get("since"), "since"),
        until=_time(params.get("until"), "until"),
        before_id=_int(params.get("before"), "before", None),
    )
    events = await audit.search(context(request).db, where, limit)
    return json_response(
        {
            "events": [
                {
                    "id": event.id,
                    "at": iso(event.at),
                    "action": event.action,
                    "actor": event.actor,
                    "owner": event.owner,
                    "upload_id": event.upload_id,
                    "sha256": event.sha256,
                    "client": event.client,
                    "detail": event.detail,
                }
                for event in events
            ],
            "next": events[-1].id if len(events) == limit else None,
        }
    )


def _int(value: str | None, name: str, default: int | None) -> int | None:
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 18:  # "²" is a digit too
        raise HTTPException(400, f"{name} must be a non-negative integer")
    return int(value)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC now: 9999-12-31T23:59-01:00 is past the last year datetime holds (was a 500).
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise HTTPException(400, f"{name} must be an ISO 8601 time") from None


routes = [Route("/api/audit", search, methods=["GET"])]
