"""What operators and load balancers ask: ``/healthz`` (the process answers), ``/readyz``
(it can serve: database, locks and every store reachable, and not shutting down) and
``/metrics`` (Prometheus). None needs a token; nginx keeps ``/metrics`` off the public side."""

from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.api.access import context
from app.locks.base import LockUnavailable
from app.storage.errors import StorageError

log = logging.getLogger("tusgate.readyz")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    ctx = context(request)
    checks: dict[str, str] = {}
    if ctx.draining:
        checks["instance"] = "shutting down"
    try:
        await ctx.db.fetch_val("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"; the reason is logged
        log.warning("database not ready: %r", exc)
        checks["database"] = "unreachable"
    try:
        await ctx.locker.held("readyz")
        checks["locks"] = "ok"
    except LockUnavailable:
        checks["locks"] = "unreachable"
    for name, store in ctx.stores.items():
        try:
            await store.check()
            checks[f"store:{name}"] = "ok"
        except StorageError as exc:
            log.warning("store %r not ready: %r", name, exc)
            checks[f"store:{name}"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"ready": ready, "checks": checks},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
