"""Routes that take several methods on one path.

Starlette answers a method that no route of a path takes with 405 and an ``Allow`` header, but
from the first route of that path alone: with one route per method, ``Allow`` named one method
(found by schemathesis; RFC 9110 wants all of them). One route per path, dispatching on the
method, names them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


def route(path: str, *, name: str | None = None, **by_method: Endpoint) -> Route:
    """One route for ``path`` taking each method given (``GET=show, PUT=update``); HEAD goes
    to the GET endpoint unless it has its own, as Starlette does."""
    endpoints = dict(by_method)
    if "GET" in endpoints:
        endpoints.setdefault("HEAD", endpoints["GET"])

    async def endpoint(request: Request) -> Response:
        return await endpoints[request.method](request)

    return Route(path, endpoint, methods=list(endpoints), name=name)
