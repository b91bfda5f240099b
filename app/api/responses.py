"""JSON responses and errors of the API: one shape, ``{"error": reason}``, for every failure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import db as database


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers={"Cache-Control": "no-store"})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise HTTPException(400, "body must be JSON") from None


async def database_error(request: Request, exc: Exception) -> Response:
    """A driver's error: 400 for a value the database cannot hold (PostgreSQL's text takes no
    NUL: a query parameter or path holding one was a 500), 503 when the database cannot be
    reached now, else a bug (500)."""
    if isinstance(exc, database.VALUE_ERRORS):
        return JSONResponse(
            {"error": "a value in the request cannot be stored (a NUL character?)"},
            status_code=400,
            headers={"Cache-Control": "no-store"},
        )
    if not database.unreachable(exc):
        raise exc
    return JSONResponse(
        {"error": "database unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": "5", "Cache-Control": "no-store"},
    )
