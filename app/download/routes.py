"""``GET`` and ``HEAD /download/{sha256}``: a file by its checksum, whole or one byte range.

The order of the checks follows RFC 9110 §13.2.2: who may read (404 for anyone else), then
``If-None-Match`` (304), then ``If-Range`` and ``Range`` (206, 416, or the whole file), and only
then is a copy chosen and opened (``choice.py``, ``stream.py``): the best hot copy, else the
restore cache's, else a restore of a cold copy starts and the answer is ``202`` with
``Retry-After``. A download that sends bytes holds a quota slot until its answer ends (429 when
a limit refuses it). ``HEAD`` answers the headers of the whole file without touching a store or
a quota; ``Range`` applies to ``GET`` only.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from databases import Database
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import metrics
from app.api.access import context
from app.context import Context
from app.db import audit, downloads
from app.db import cache as cache_queries
from app.db.audit import Event
from app.db.cache import CacheEntry, CacheFull
from app.db.downloads import FileView, StoredCopy
from app.db.files import ONLINE
from app.download import access
from app.download.access import Reader
from app.download.choice import cold_copies, hot_copies
from app.download.headers import etag, last_modified, representation, validators
from app.download.ranges import Span, Unsatisfiable, none_match, range_applies, requested_span
from app.download.stream import Piece, StoreStream, open_copy, unavailable
from app.files import restore
from app.quota import downloads as download_quota
from app.quota.downloads import DownloadRefused, Slot
from app.servers import ZERO_COPY
from app.settings import CACHE
from app.tus.lifecycle import now


async def download(request: Request) -> Response:
    ctx = context(request)
    sha256 = request.path_params["sha256"]
    reader = access.reader(request)
    view = await access.readable(ctx, sha256, reader)
    if none_match(request.headers.get("if-none-match"), etag(sha256)):
        return Response(status_code=304, headers=validators(view))
    span = _span(request, view) if request.method == "GET" else None
    served = span or Span(0, view.size)
    headers = {**representation(view), "Content-Length": str(served.length)}
    if span is not None:
        headers["Content-Range"] = span.content_range(view.size)
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers)

    copies = await downloads.copies(ctx.db, sha256)
    state = await restore.availability(ctx, sha256, copies)
    if state.available:
        slot = await _take_slot(ctx, reader, served)
        try:
            zero_copy = ZERO_COPY in request.scope.get("extensions", {})
            opened = await _open(ctx, sha256, copies, served, state.entry, zero_copy)
            if opened is not None:
                await _record(ctx.db, reader, view, served, opened[0])
        except BaseException:
            await ctx.meter.release(slot, refund=True)
            raise
        if opened is not None:
            return StoreStream(
                opened[1],
                206 if span is not None else 200,
                headers,
                alive=lambda: ctx.meter.renew(slot),
                done=lambda: ctx.meter.release(slot),
            )
        await ctx.meter.release(slot, refund=True)
    return await _restoring(ctx, view, copies)


async def _take_slot(ctx: Context, reader: Reader, served: Span) -> Slot:
    limits = await download_quota.limits(ctx.db, ctx.settings, reader.id)
    try:
        return await ctx.meter.take(reader.id, limits, served.length, counted=served.start == 0)
    except DownloadRefused as exc:
        metrics.QUOTA_REJECTIONS.labels("download").inc()
        retry = {} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        raise HTTPException(429, str(exc), headers=retry) from None


async def _open(
    ctx: Context,
    sha256: str,
    copies: list[StoredCopy],
    served: Span,
    entry: CacheEntry | None,
    zero_copy: bool,
) -> tuple[str, AsyncGenerator[Piece, None]] | None:
    """The bytes of the best hot copy, else of the cache's; with the location they come from.
    ``entry`` is the cache's, if availability looked it up (it does not when hot copies exist,
    and the cache is asked only if they all fail)."""
    opened = await open_copy(ctx, hot_copies(copies, ctx.settings), served, zero_copy=zero_copy)
    if opened is not None:
        return opened[0].location, opened[1]
    if entry is None:
        entry = await cache_queries.get(ctx.db, sha256)
    if entry is None or not entry.readable(now()):
        return None
    cached = await open_copy(
        ctx, [StoredCopy(CACHE, entry.store_key, ONLINE)], served, zero_copy=zero_copy
    )
    if cached is None:
        return None
    await cache_queries.touch(ctx.db, sha256, now())
    return CACHE, cached[1]


async def _restoring(ctx: Context, view: FileView, copies: list[StoredCopy]) -> Response:
    """No copy can be read now: restore a cold one (202), or say why not (503, 507)."""
    if not cold_copies(copies, ctx.settings):
        raise unavailable()
    try:
        await restore.start(ctx, view.sha256, view.size, copies)
    except CacheFull as exc:
        if exc.permanent:
            raise HTTPException(507, str(exc)) from None
        raise unavailable(str(exc)) from None
    wait = restore.retry_after(ctx.settings)
    return JSONResponse(
        {"sha256": view.sha256, "state": restore.RESTORING_STATE, "retry_after": wait},
        status_code=202,
        headers={"Retry-After": str(wait), "Cache-Control": "no-store"},
    )


def _span(request: Request, view: FileView) -> Span | None:
    """The range to send, None for the whole file; 416 when it misses the file entirely."""
    if not range_applies(request.headers.get("if-range"), etag(view.sha256), last_modified(view)):
        return None
    try:
        return requested_span(request.headers.get("range"), view.size)
    except Unsatisfiable:
        raise HTTPException(
            416, "range not satisfiable", headers={"Content-Range": f"bytes */{view.size}"}
        ) from None


async def _record(
    db: Database, reader: Reader, view: FileView, served: Span, location: str
) -> None:
    await audit.record(
        db,
        Event(
            "file.downloaded",
            reader.id,
            owner=reader.id if view.owned else None,
            sha256=view.sha256,
            client=reader.address,
            detail={
                "start": served.start,
                "length": served.length,
                "size": view.size,
                "location": location,
                "link": reader.link,
            },
        ),
    )


routes = [Route("/download/{sha256:str}", download, methods=["GET", "HEAD"], name="download")]
