"""``create_app(settings)``: the Starlette application, its routes, middleware and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app import operations, web
from app.api import audit as audit_api
from app.api import availability as availability_api
from app.api import files as files_api
from app.api import openapi
from app.api import quotas as quotas_api
from app.api import uploads as uploads_api
from app.api.responses import database_error, http_error
from app.auth.middleware import BearerAuth
from app.auth.principal import Principal
from app.context import Context, open_context
from app.db import DRIVER_ERRORS
from app.download import links as download_links
from app.download import routes as download_routes
from app.jobs import events, memory, sweeper, tiering
from app.jobs.events import Publisher
from app.jobs.schedule import repeat
from app.jobs.sweeper import sweep
from app.jobs.tiering import tier
from app.middleware.access import RequestLog
from app.middleware.drain import DrainBody
from app.middleware.proxy import ForwardedHeaders
from app.resumable import routes as resumable_routes
from app.settings import Settings
from app.tus import routes as tus_routes
from app.tus.method_override import MethodOverride

PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/", "/api/config", "/api/openapi.json"}
)
PUBLIC_PREFIXES = ("/assets/",)
# the web page's files
LINK_PREFIXES = ("/download/",)  # where a ?token= download link stands in for a bearer token
REQUEST_HEADERS = [
    "Authorization",
    "Content-Digest",
    "Content-Disposition",
    "Content-Type",
    "If-None-Match",
    "If-Range",
    "Range",
    "Tus-Resumable",
    "Repr-Digest",
    "Upload-Checksum",
    "Upload-Complete",
    "Upload-Concat",
    "Upload-Defer-Length",
    "Upload-Draft-Interop-Version",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "X-HTTP-Method-Override",
    "X-Request-ID",
    "X-Requested-With",
]
RESPONSE_HEADERS = [
    "Accept-Ranges",
    "Content-Disposition",
    "Content-Range",
    "ETag",
    "Location",
    "Repr-Digest",
    "Retry-After",
    "Tus-Checksum-Algorithm",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Resumable",
    "Tus-Version",
    "Upload-Complete",
    "Upload-Concat",
    "Upload-Defer-Length",
    "Upload-Draft-Interop-Version",
    "Upload-Expires",
    "Upload-Length",
    "Upload-Limit",
    "Upload-Metadata",
    "Upload-Offset",
]


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            context = await open_context(settings, stack)
            app.state.context = context
            context.spawn(
                lambda: repeat(lambda: sweep(context), settings.sweep_interval_seconds, sweeper.log)
            )
            context.spawn(
                lambda: repeat(
                    lambda: tier(context), settings.tiering_interval_seconds, tiering.log
                )
            )
            trim = memory.trimmer(settings.memory_trim_above_bytes)
            if trim is not None:
                context.spawn(lambda: repeat(trim, memory.INTERVAL_SECONDS, memory.log))
            if settings.redis_url:
                publisher = Publisher(context, settings.redis_url)
                stack.push_async_callback(publisher.close)
                context.spawn(
                    lambda: repeat(publisher.publish, settings.events_interval_seconds, events.log)
                )
            yield

    app: Starlette  # created below; these functions run once it serves

    async def verify(token: str) -> Principal:
        context: Context = app.state.context
        return await context.verify(token)

    def shutting_down() -> bool:
        context: Context | None = getattr(app.state, "context", None)
        return context is not None and context.draining

    middleware = [
        Middleware(ForwardedHeaders, trusted=settings.trusted_proxies),
        Middleware(RequestLog),
        Middleware(
            DrainBody,
            idle_timeout=settings.patch_idle_timeout_seconds,
            hurry=shutting_down,
        ),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=REQUEST_HEADERS,
            expose_headers=RESPONSE_HEADERS,
            max_age=86400,
        ),
        Middleware(MethodOverride),
        Middleware(
            BearerAuth,
            verify=verify,
            public_paths=PUBLIC_PATHS,
            link_prefixes=LINK_PREFIXES,
            public_prefixes=PUBLIC_PREFIXES,
        ),
    ]
    app = Starlette(
        routes=[
            *operations.routes,
            *openapi.routes,
            *tus_routes.routes,
            *resumable_routes.routes,
            *uploads_api.routes,
            *availability_api.routes,
            *files_api.routes,
            *download_routes.routes,
            *download_links.routes,
            *quotas_api.routes,
            *audit_api.routes,
            *web.routes(settings),
        ],
        middleware=middleware,
        exception_handlers={
            HTTPException: http_error,
            **{kind: database_error for kind in DRIVER_ERRORS},
        },
        lifespan=lifespan,
    )
    return app
