"""JSON responses and errors of the API: one shape, ``{"error": reason}``, for every failure."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from app import db as database

# The largest JSON body taken: a hundred checksums with their JSON are about 7 KiB.
MAX_JSON_BODY = 64 * 1024


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers={"Cache-Control": "no-store"})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def json_body(request: Request, idle_timeout: float) -> Any:
    """The request's JSON body, read with the limits an upload body has: at most
    ``MAX_JSON_BODY`` bytes (413 past it: Starlette's ``request.json()`` held any size in
    memory) and no silence longer than ``idle_timeout`` (408)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_JSON_BODY:
        raise HTTPException(413, f"a JSON body is at most {MAX_JSON_BODY} bytes")
    body = bytearray()
    chunks = request.stream()
    try:
        while True:
            with anyio.fail_after(idle_timeout):
                chunk = await anext(chunks, None)
            if chunk is None:
                break
            body += chunk
            if len(body) > MAX_JSON_BODY:
                raise HTTPException(413, f"a JSON body is at most {MAX_JSON_BODY} bytes")
    except TimeoutError:
        raise HTTPException(408, f"the body was silent for {idle_timeout:g} s") from None
    except ClientDisconnect:
        raise HTTPException(400, "the client went away before its body ended") from None
    try:
        return json.loads(body)
    except ValueError:
        raise HTTPException(400, "body must be JSON") from None


async def database_error(request: Request, exc: Exception) -> Response:
    """A driver's error: 507 when the database's disk is full, 503 when the database cannot be
    reached now, else a bug (500)."""
    if database.full(exc):
        status, reason, headers = 507, "database full; retry later", {}
    elif database.unreachable(exc):
        status, reason, headers = 503, "database unavailable; retry later", {"Retry-After": "5"}
    else:
        raise exc
    return JSONResponse(
        {"error": reason}, status_code=status, headers={**headers, "Cache-Control": "no-store"}
    )
