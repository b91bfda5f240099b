"""Storage quotas over HTTP: ``GET /api/me`` for the caller, ``/api/quotas/{user}`` for admins.

``PUT`` takes any of ``max_bytes``, ``max_uploads``, ``max_file_size`` (storage) and
``max_downloads``, ``max_concurrent_downloads``, ``max_download_bytes`` (downloads): a
non-negative integer overrides the default for that user, ``null`` returns to the default.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.access import admin, caller, context, text
from app.api.responses import json_body, json_response
from app.context import Context
from app.db import audit
from app.db.audit import Event
from app.db.schema import quotas
from app.quota import downloads as download_quota
from app.quota import storage as storage_quota
from app.routing import route
from app.tus.lifecycle import now

LIMITS = (*storage_quota.LIMITS, *download_quota.LIMITS)
# The largest value each limit's column holds: PostgreSQL's bigint or integer (a larger one was a
# 500, found by schemathesis).
MAXIMA = {
    name: 2**63 - 1 if isinstance(quotas.c[name].type, sa.BigInteger) else 2**31 - 1
    for name in LIMITS
}


async def _report(ctx: Context, user: str) -> dict[str, Any]:
    limits = await storage_quota.limits(ctx.db, ctx.settings, user)
    usage = await storage_quota.usage(ctx.db, user)
    download_limits = await download_quota.limits(ctx.db, ctx.settings, user)
    downloads = await ctx.meter.usage(user, download_limits.window_seconds)
    return {
        "limits": {**limits.__dict__, **download_limits.__dict__},
        "overrides": await storage_quota.overrides(ctx.db, user, LIMITS),
        "usage": {
            "bytes": usage.bytes,
            "stored_bytes": usage.stored,
            "reserved_bytes": usage.reserved,
            "uploads": usage.uploads,
            "downloads": downloads.downloads,
            "downloads_in_progress": downloads.in_progress,
            "downloaded_bytes_in_window": downloads.window_bytes,
        },
    }


async def me(request: Request) -> Response:
    principal = caller(request)
    report = await _report(context(request), principal.id)
    return json_response(
        {"id": principal.id, "name": principal.name, "roles": sorted(principal.roles), **report}
    )


async def show(request: Request) -> Response:
    admin(request)
    user = text(request.path_params["user"], "user")
    return json_response({"user": user, **await _report(context(request), user)})


async def update(request: Request) -> Response:
    principal = admin(request)
    ctx = context(request)
    user = text(request.path_params["user"], "user")
    values = _limits(await json_body(request, context(request).settings.patch_idle_timeout_seconds))
    await storage_quota.set_overrides(ctx.db, user, values, now())
    await audit.record(
        ctx.db,
        Event("quota.changed", principal.id, owner=user, client=principal.address, detail=values),
    )
    return json_response({"user": user, **await _report(ctx, user)})


def _limits(body: Any) -> dict[str, int | None]:
    if not isinstance(body, dict) or not body:
        raise HTTPException(400, f"body must be an object with some of {LIMITS}")
    unknown = set(body) - set(LIMITS)
    if unknown:
        raise HTTPException(400, f"unknown limits: {sorted(unknown)}")
    for name, value in body.items():
        if isinstance(value, float) and value.is_integer():
            value = body[name] = int(value)  # JSON's 5.0 is the integer 5 (JSON Schema agrees)
        valid = value is None or (type(value) is int and 0 <= value <= MAXIMA[name])
        if not valid:
            raise HTTPException(400, f"{name} must be an integer from 0 to {MAXIMA[name]}, or null")
    return dict(body)


routes = [
    Route("/api/me", me, methods=["GET"]),
    route("/api/quotas/{user:str}", GET=show, PUT=update),
]
