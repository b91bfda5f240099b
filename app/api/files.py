"""Files over HTTP: ``GET /api/files`` (the caller's files, newest first), ``DELETE
/api/files/{sha256}`` (the caller stops owning a file; its bytes go with the last owner) and,
for admins, legal holds: ``PUT /api/files/{sha256}/hold`` suspends a file's expiry, ``DELETE``
lifts it."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.access import admin, caller, context
from app.api.responses import iso, json_response
from app.db import audit
from app.db import files as queries
from app.db.audit import Event
from app.db.files import SHA256
from app.files import catalogue
from app.routing import route


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


async def delete(request: Request) -> Response:
    """204 once the caller no longer owns the file; 404 if they did not own it."""
    principal = caller(request)
    sha256 = request.path_params["sha256"]
    ctx = context(request)
    event = Event(
        "file.deleted", principal.id, owner=principal.id, sha256=sha256, client=principal.address
    )
    if not SHA256.fullmatch(sha256) or not await catalogue.drop_owner(
        ctx, sha256, principal.id, event
    ):
        raise HTTPException(404, "file not found")
    return Response(status_code=204)


async def hold(request: Request) -> Response:
    return await _set_hold(request, held=True)


async def release(request: Request) -> Response:
    return await _set_hold(request, held=False)


async def _set_hold(request: Request, *, held: bool) -> Response:
    principal = admin(request)
    sha256 = request.path_params["sha256"]
    if not SHA256.fullmatch(sha256):
        raise HTTPException(400, "a checksum is 64 lower-case hexadecimal digits")
    ctx = context(request)
    if not await catalogue.set_hold(ctx, sha256, held):
        raise HTTPException(404, "file not found")
    action = "file.held" if held else "file.released"
    await audit.record(ctx.db, Event(action, principal.id, sha256=sha256, client=principal.address))
    return Response(status_code=204)


routes = [
    Route("/api/files", mine, methods=["GET"]),
    Route("/api/files/{sha256:str}", delete, methods=["DELETE"]),
    route("/api/files/{sha256:str}/hold", PUT=hold, DELETE=release),
]
