"""Bearer authentication as a plain ASGI middleware.

It runs before any handler, so no byte of a request body is read for an unauthenticated
caller. CORS preflights never reach it (the CORS middleware answers them), and a few public
paths (health) pass without a token.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.errors import InvalidToken
from app.auth.principal import Principal

Verifier = Callable[[str], Awaitable[Principal]]


class BearerAuth:
    def __init__(self, app: ASGIApp, verify: Verifier, public_paths: frozenset[str]) -> None:
        self.app = app
        self.verify = verify
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidToken("missing bearer token")
            scope["user"] = await self.verify(token.strip())
        except InvalidToken as exc:
            await _unauthorized(str(exc), scope["method"])(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _unauthorized(reason: str, method: str) -> Response:
    quoted = json.dumps(reason)  # a quoted-string: escapes quotes and backslashes
    headers = {
        "WWW-Authenticate": f'Bearer error="invalid_token", error_description={quoted}',
        "Tus-Resumable": "1.0.0",
    }
    body = b"" if method == "HEAD" else f"unauthorized: {reason}\n".encode()
    return Response(body, status_code=401, headers=headers, media_type="text/plain")
