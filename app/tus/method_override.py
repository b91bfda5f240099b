"""``X-HTTP-Method-Override``: lets clients behind proxies that only pass GET and POST speak tus.

A plain ASGI middleware: a POST carrying the header is handled as the method it names.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

OVERRIDABLE = frozenset({"PATCH", "DELETE", "HEAD", "OPTIONS"})


class MethodOverride:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            override = Headers(scope=scope).get("x-http-method-override", "").strip().upper()
            if override in OVERRIDABLE:
                scope = {**scope, "method": override}
        await self.app(scope, receive, send)
