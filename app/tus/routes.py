"""The tus 1.0.0 endpoints: HTTP in, life-cycle calls, HTTP out.

Handlers parse headers (``headers.py``), call ``lifecycle``/``concat`` and format the answer;
every failure goes through ``errors.error_response``. Each response carries ``Tus-Resumable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import Response

from app.auth.principal import Principal, of_request
from app.context import Context
from app.db.uploads import DONE, RECEIVING, Upload
from app.routing import route
from app.storage.base import Concatenator
from app.tus import concat, errors, lifecycle, receive
from app.tus.body import BodyReader
from app.tus.checksum import ALGORITHMS
from app.tus.errors import TUS_VERSION
from app.tus.headers import (
    http_date,
    parse_checksum,
    parse_concat,
    parse_int,
    parse_metadata,
)

OFFSET_OCTET_STREAM = "application/offset+octet-stream"
EXTENSIONS = [
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "termination",
    "checksum",
]

Handler = Callable[[Request], Awaitable[Response]]


def tus_endpoint(handler: Handler) -> Handler:
    """Check the protocol version, and answer every error from the one error table."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            version = request.headers.get("tus-resumable")
            if request.method != "OPTIONS" and version != TUS_VERSION:
                raise errors.UNSUPPORTED_VERSION
            if request.method in ("POST", "PATCH") and _context(request).draining:
                raise errors.SHUTTING_DOWN
            response = await handler(request)
        except Exception as exc:  # the one place where errors become responses
            return errors.error_response(exc, request.method)
        response.headers["Tus-Resumable"] = TUS_VERSION
        return response

    return endpoint


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def _principal(request: Request) -> Principal:
    return of_request(request.scope)


@tus_endpoint
async def options(request: Request) -> Response:
    ctx = _context(request)
    extensions = list(EXTENSIONS)
    if isinstance(ctx.upload_store, Concatenator):
        extensions += ["concatenation", "concatenation-unfinished"]
    headers = {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(extensions),
        "Tus-Max-Size": str(ctx.settings.max_size),
        "Tus-Checksum-Algorithm": ",".join(ALGORITHMS),
    }
    return Response(status_code=204, headers=headers)


@tus_endpoint
async def create(request: Request) -> Response:
    ctx = _context(request)
    principal = _principal(request)
    metadata = request.headers.get("upload-metadata", "")
    parse_metadata(metadata)  # validates; the header itself is kept as sent
    concat_header = parse_concat(request.headers.get("upload-concat"))
    if concat_header is not None and concat_header.kind == "final":
        if "upload-length" in request.headers or "upload-defer-length" in request.headers:
            raise errors.INVALID_CONCAT.but("a final upload takes no Upload-Length")
        upload = await concat.create_final(ctx, principal, concat_header.partial_ids, metadata)
        return Response(status_code=201, headers=_created_headers(request, upload, False))

    length = parse_int(request.headers.get("upload-length"), errors.INVALID_LENGTH)
    defer = request.headers.get("upload-defer-length")
    if defer is not None and (defer.strip() != "1" or length is not None):
        raise errors.INVALID_DEFER_LENGTH
    if length is None and defer is None:
        raise errors.MISSING_LENGTH
    with_body = request.headers.get("content-type") == OFFSET_OCTET_STREAM
    chunk = _chunk(request, offset=0) if with_body else None
    if length is not None:
        lifecycle.check_length(ctx, length)
        if chunk is not None and (chunk.content_length or 0) > length:
            raise errors.BODY_TOO_LARGE.but(f"{chunk.content_length} > {length}")
    new = lifecycle.NewUpload(length, metadata, partial=concat_header is not None)
    upload = await lifecycle.create(ctx, principal, new)
    if chunk is not None and upload.state != DONE:
        # The upload exists whatever happens to its first bytes (a bad checksum, a full disk):
        # the client learns the offset from this answer and resumes from there.
        try:
            upload = await receive.write(ctx, upload.id, principal, chunk)
        except Exception as exc:
            if errors.to_tus_error(exc) is None:
                raise
    return Response(status_code=201, headers=_created_headers(request, upload, with_body))


def _created_headers(request: Request, upload: Upload, with_body: bool) -> dict[str, str]:
    headers = {"Location": str(request.url_for("tus:upload", upload_id=upload.id))}
    headers.update(_expiry(upload))
    if with_body:
        headers["Upload-Offset"] = str(upload.offset)
    return headers


def _expiry(upload: Upload) -> dict[str, str]:
    if upload.expires_at is None or (upload.state == DONE and not upload.is_partial):
        return {}
    return {"Upload-Expires": http_date(upload.expires_at)}


def _chunk(request: Request, offset: int, length: int | None = None) -> receive.Chunk:
    return receive.Chunk(
        offset=offset,
        reader=BodyReader(request.receive, _context(request).settings.patch_idle_timeout_seconds),
        checksum=parse_checksum(request.headers.get("upload-checksum")),
        length=length,
        content_length=parse_int(
            request.headers.get("content-length"), errors.INVALID_CONTENT_LENGTH
        ),
    )


@tus_endpoint
async def head(request: Request) -> Response:
    ctx = _context(request)
    upload = await lifecycle.current(ctx, request.path_params["upload_id"], _principal(request))
    if upload.is_final and upload.state == RECEIVING:
        upload = await concat.assemble(ctx, upload.id) or upload
    headers = {"Cache-Control": "no-store"}
    if not (upload.is_final and upload.state == RECEIVING):
        # A final upload has no offset until it is assembled (concatenation-unfinished).
        headers["Upload-Offset"] = str(upload.offset)
    if upload.length is None:
        if not upload.is_final:  # a final upload's length waits for its partials, not for us
            headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(upload.length)
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    if upload.is_partial:
        headers["Upload-Concat"] = "partial"
    elif upload.is_final:
        urls = [str(request.url_for("tus:upload", upload_id=i)) for i in upload.partials or []]
        headers["Upload-Concat"] = "final;" + " ".join(urls)
    headers.update(_expiry(upload))
    return Response(status_code=200, headers=headers)


@tus_endpoint
async def patch(request: Request) -> Response:
    if request.headers.get("content-type") != OFFSET_OCTET_STREAM:
        raise errors.INVALID_CONTENT_TYPE
    offset = parse_int(request.headers.get("upload-offset"), errors.INVALID_OFFSET)
    if offset is None:
        raise errors.INVALID_OFFSET.but("missing")
    declared = parse_int(request.headers.get("upload-length"), errors.INVALID_LENGTH)
    chunk = _chunk(request, offset, declared)
    upload = await receive.write(
        _context(request), request.path_params["upload_id"], _principal(request), chunk
    )
    headers = {"Upload-Offset": str(upload.offset), **_expiry(upload)}
    return Response(status_code=204, headers=headers)


@tus_endpoint
async def delete(request: Request) -> Response:
    await lifecycle.terminate(
        _context(request), request.path_params["upload_id"], _principal(request)
    )
    return Response(status_code=204)


routes = [
    route("/files/", OPTIONS=options, POST=create),
    route(
        "/files/{upload_id:str}",
        HEAD=head,
        PATCH=patch,
        DELETE=delete,
        OPTIONS=options,
        name="tus:upload",
    ),
]
