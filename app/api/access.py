"""Who may call the JSON API: the caller, and admins (the role named by ``admin_role``)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

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
