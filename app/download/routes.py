"""``GET`` and ``HEAD /download/{sha256}``: a file by its checksum, whole or one byte range.

The order of the checks follows RFC 9110 §13.2.2: who may read (404 for anyone else), then
``If-None-Match`` (304), then ``If-Range`` and ``Range`` (206, 416, or the whole file), and only
then is a copy chosen and opened (``choice.py``, ``stream.py``). ``HEAD`` answers the headers of
the whole file without touching a store; ``Range`` applies to ``GET`` only.
"""

from __future__ import annotations

from databases import Database
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.access import context
from app.db import audit, downloads
from app.db.audit import Event
from app.db.downloads import FileView
from app.download import access
from app.download.access import Reader
from app.download.choice import readable_copies
from app.download.headers import etag, last_modified, representation, validators
from app.download.ranges import Span, Unsatisfiable, none_match, range_applies, requested_span
from app.download.stream import StoreStream, open_copy


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

    copies = readable_copies(await downloads.copies(ctx.db, sha256), ctx.settings)
    copy, chunks = await open_copy(ctx, copies, served)
    try:
        await _record(ctx.db, reader, view, served, copy.location)
    except BaseException:
        await chunks.aclose()
        raise
    return StoreStream(chunks, 206 if span is not None else 200, headers)


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


routes = [Route("/download/{sha256:str}", download, methods=["GET", "HEAD"])]
