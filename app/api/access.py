"""Who may call the JSON API: the caller, and admins (the role named by ``admin_role``); and
how one path takes several methods."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.principal import Principal, of_request
from app.context import Context


def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx


def caller(request: Request) -> Principal:
    return of_request(request.scope)


def admin(request: Request) -> Principal:
    principal = caller(request)
    if not principal.has_role(context(request).settings.admin_role):
        raise HTTPException(403, f"needs the {context(request).settings.admin_role!r} role")
    return principal


def text(value: str, name: str) -> str:
    """A text parameter, refused (400) if it holds NUL: PostgreSQL's text cannot, and SQLite's
    can, so the answer would otherwise depend on the database."""
    if "\x00" in value:
        raise HTTPException(400, f"{name} must not contain NUL")
    return value


Endpoint = Callable[[Request], Awaitable[Response]]


def route(path: str, **by_method: Endpoint) -> Route:
    """One route for every method of ``path`` (``GET=show, PUT=update``): a method it lacks then
    answers 405 with all the others in ``Allow``, where one route per method would name only its
    own (found by schemathesis)."""

    async def endpoint(request: Request) -> Response:
        return await by_method[request.method](request)

    return Route(path, endpoint, methods=list(by_method))
