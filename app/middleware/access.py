"""One log line and the request metrics for every request, under a request id.

The id comes from ``X-Request-ID`` when the client or a proxy sent a sane one, else it is made
here; it is echoed in the response and carried by every log line the request causes. The line
names the route (the path with its parameters as ``{names}``, so that metrics keep a bounded
set of labels), never the query string or a header: a download link's token rides in the
query string, bearer tokens in ``Authorization``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.auth.principal import Principal
from app.logs import REQUEST_ID
from app.servers import ZERO_COPY

log = logging.getLogger("tusgate.request")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "unmatched"


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500  # unless an answer starts
        received = sent = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == ZERO_COPY:
                sent += message["count"]
            await send(message)

        try:
            await self.app(scope, counted_receive, tagged_send)
        finally:
            duration = time.perf_counter() - started
            route = route_of(scope)
            metrics.REQUEST_DURATION.labels(scope["method"], route, str(status)).observe(duration)
            metrics.BYTES_RECEIVED.inc(received)
            metrics.BYTES_SENT.inc(sent)
            log.info("request", extra=_fields(scope, route, status, received, sent, duration))
            REQUEST_ID.reset(token)


def route_of(scope: Scope) -> str:
    """The matched route's path, parameters as ``{name}``; "unmatched" for anything else."""
    if "endpoint" not in scope:
        return UNMATCHED
    path: str = scope.get("root_path", "") + scope["path"]
    for name, value in scope.get("path_params", {}).items():
        if value:
            path = path.replace(str(value), f"{{{name}}}")
    return path


def _fields(
    scope: Scope, route: str, status: int, received: int, sent: int, duration: float
) -> dict[str, object]:
    user = scope.get("user")
    params = scope.get("path_params", {})
    client = scope.get("client")
    fields: dict[str, object] = {
        "method": scope["method"],
        "route": route,
        "status": status,
        "bytes_in": received,
        "bytes_out": sent,
        "duration_ms": round(duration * 1000, 1),
        "user": user.id if isinstance(user, Principal) else None,
        "client": client[0] if client else None,
    }
    for name in ("upload_id", "sha256"):
        if name in params:
            fields[name] = params[name]
    return fields
