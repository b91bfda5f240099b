"""``GET /api/uploads/{id}``: an upload's state as JSON, for pages and scripts."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.access import caller, context
from app.api.responses import iso, json_response
from app.db import uploads as queries


async def show(request: Request) -> Response:
    ctx = context(request)
    upload = await queries.get(ctx.db, request.path_params["upload_id"])
    if upload is None or upload.owner != caller(request).id:
        raise HTTPException(404, "upload not found")
    writing = await ctx.locker.held(upload.id)
    return json_response(
        {
            "id": upload.id,
            "state": upload.state,
            "offset": upload.offset,
            "length": upload.length,
            "name": upload.filename,
            "concat": upload.concat,
            "created_at": iso(upload.created_at),
            "expires_at": iso(upload.expires_at),
            "completed_at": iso(upload.completed_at),
            "sha256": upload.sha256,
            "writing": writing,
        }
    )


routes = [Route("/api/uploads/{upload_id:str}", show, methods=["GET"])]
