"""``GET /api/files``: the caller's files, newest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.responses import iso, json_response
from app.db import files as queries


async def mine(request: Request) -> Response:
    owned = await queries.owned_by(request.app.state.context.db, request.user.id)
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


routes = [Route("/api/files", mine, methods=["GET"])]
