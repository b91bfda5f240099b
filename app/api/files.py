"""Files over HTTP: ``GET /api/files`` (the caller's files, newest first) and, for admins,
legal holds: ``PUT /api/files/{sha256}/hold`` suspends a file's expiry, ``DELETE`` lifts it."""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.access import admin, caller, context
from app.api.responses import iso, json_response
from app.db import audit
from app.db import files as queries
from app.db.audit import Event
from app.files import catalogue

SHA256 = re.compile(r"^[0-9a-f]{64}$")


async def mine(request: Request) -> Response:
    owned = await queries.owned_by(context(request).db, caller(request).id)
    return json_response(
        {
            "files": [
                {
                    "sha256": item.sha256,
                    "name": item.name,
                    "size": item.size,
                    "content_type": item.content_type,
                    "created_at": iso(item.created_at),
                    "expires_at": iso(item.expires_at),
                }
                for item in owned
            ]
        }
    )


async def hold(request: Request) -> Response:
    return await _set_hold(request, held=True)


async def release(request: Request) -> Response:
    return await _set_hold(request, held=False)


async def _set_hold(request: Request, *, held: bool) -> Response:
    principal = admin(request)
    sha256 = request.path_params["sha256"]
    if not SHA256.match(sha256):
        raise HTTPException(400, "a checksum is 64 lower-case hexadecimal digits")
    ctx = context(request)
    if not await catalogue.set_hold(ctx, sha256, held):
        raise HTTPException(404, "file not found")
    action = "file.held" if held else "file.released"
    await audit.record(ctx.db, Event(action, principal.id, sha256=sha256, client=principal.address))
    return Response(status_code=204)


routes = [
    Route("/api/files", mine, methods=["GET"]),
    Route("/api/files/{sha256:str}/hold", hold, methods=["PUT"]),
    Route("/api/files/{sha256:str}/hold", release, methods=["DELETE"]),
]
