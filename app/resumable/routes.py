"""The draft's endpoints: upload creation at ``/resumable/``, upload resources below it.

Interop version 8 (draft-ietf-httpbis-resumable-upload, editor's copy after -11). The handlers
translate the draft's fields into the calls tus makes (``lifecycle``, ``receive``), so an upload
created here is an ordinary upload row: its lock, quota, store, completion and file are the same.

No ``104 (Upload Resumption Supported)`` is sent: ASGI has no way to send an arbitrary
informational response (hypercorn's only extension sends ``103`` with ``Link`` fields, and only
over HTTP/2 and HTTP/3), so clients learn the upload resource from the final response; the
draft's "careful upload creation" (an empty creation request, then appends) resumes everything.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.auth.principal import Principal, of_request
from app.context import Context
from app.db.uploads import DONE, Upload
from app.resumable import fields, problems
from app.resumable.fields import INTEROP_VERSION
from app.routing import route
from app.tus import errors, lifecycle, receive
from app.tus.body import BodyReader
from app.tus.errors import MISMATCHING_OFFSET
from app.tus.headers import parse_int

PARTIAL_UPLOAD = "application/partial-upload"
Handler = Callable[[Request], Awaitable[Response]]


def resumable_endpoint(handler: Handler) -> Handler:
    """Check the interop version, and answer every error as a problem."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            version = fields.integer(request.headers.get("upload-draft-interop-version"))
            if version is not None and version != INTEROP_VERSION:
                raise errors.UNSUPPORTED_INTEROP.but(f"{version}; this server speaks 8")
            if request.method in ("POST", "PATCH") and _context(request).draining:
                raise errors.SHUTTING_DOWN
            response = await handler(request)
        except Exception as exc:  # the one place where errors become responses
            response = await _problem(request, problems.as_problem(exc))
        response.headers["Upload-Draft-Interop-Version"] = str(INTEROP_VERSION)
        return response

    return endpoint


async def _problem(request: Request, error: errors.TusError) -> Response:
    ctx = _context(request)
    offset = None
    upload_id = request.path_params.get("upload_id")
    if error.problem == MISMATCHING_OFFSET and upload_id is not None:
        with suppress(Exception):  # the offset is a courtesy; the error stands without it
            offset = (await lifecycle.current(ctx, upload_id, _principal(request))).offset
    extra = {"Upload-Limit": _limits(ctx)} if error.status == 413 else {}
    return problems.response(
        error,
        request.method,
        offset=offset,
        provided_offset=fields.integer(request.headers.get("upload-offset")),
        completed=error is errors.DIGEST_MISMATCH,
        extra=extra,
    )


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def _principal(request: Request) -> Principal:
    return of_request(request.scope)


def _limits(ctx: Context, expires_at: datetime | None = None) -> str:
    max_age = None
    if expires_at is not None:
        max_age = max(0, int((expires_at - lifecycle.now()).total_seconds()))
    return fields.limits(
        max_size=ctx.settings.max_size, min_size=ctx.settings.min_size, max_age=max_age
    )


@resumable_endpoint
async def options(request: Request) -> Response:
    return Response(status_code=204, headers={"Upload-Limit": _limits(_context(request))})


@resumable_endpoint
async def create(request: Request) -> Response:
    ctx = _context(request)
    principal = _principal(request)
    complete = fields.boolean(request.headers.get("upload-complete"))
    if complete is None:
        raise errors.MISSING_COMPLETE
    content_length = parse_int(request.headers.get("content-length"), errors.INVALID_CONTENT_LENGTH)
    length = fields.integer(request.headers.get("upload-length"))
    if complete and content_length is not None:
        if length is not None and length != content_length:
            raise errors.LENGTH_DISAGREES.but(f"Upload-Length {length} != {content_length}")
        length = content_length
    expected = (fields.digests(request.headers.get("repr-digest")) or {}).get("sha256")
    new = lifecycle.NewUpload(
        length, _metadata(request), expected_sha256=expected.hex() if expected else None
    )
    upload = await lifecycle.create(ctx, principal, new)
    location = str(request.url_for("resumable:upload", upload_id=upload.id))
    if content_length != 0 and upload.state != DONE:
        try:
            upload = await receive.write(ctx, upload.id, principal, _chunk(request, 0, complete))
        except Exception as exc:  # the upload exists: the client resumes it from Location
            response = await _problem(request, problems.as_problem(exc))
            response.headers["Location"] = location
            return response
    return _answer(request, upload, location)


def _metadata(request: Request) -> str:
    """The representation's name and type, kept as tus's Upload-Metadata (one upload row)."""
    pairs = {
        "filename": fields.filename(request.headers.get("content-disposition")),
        "filetype": request.headers.get("content-type"),
    }
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in pairs.items()
        if value
    )


def _chunk(
    request: Request, offset: int, complete: bool, length: int | None = None
) -> receive.Chunk:
    return receive.Chunk(
        offset=offset,
        reader=BodyReader(request.receive, _context(request).settings.patch_idle_timeout_seconds),
        checksum=fields.content_checksum(request.headers.get("content-digest")),
        length=length,
        content_length=parse_int(
            request.headers.get("content-length"), errors.INVALID_CONTENT_LENGTH
        ),
        completes=complete,
    )


def _answer(request: Request, upload: Upload, location: str | None) -> Response:
    """The completed upload's result (the file), or the upload resource's state."""
    headers = {"Location": location} if location else {}
    if upload.state == DONE and not upload.is_partial:
        assert upload.sha256 is not None
        download = str(request.url_for("download", sha256=upload.sha256))
        body = {
            "upload_id": upload.id,
            "sha256": upload.sha256,
            "size": upload.offset,
            "name": upload.filename,
            "content_type": upload.content_type,
            "download": download,
        }
        headers.update({"Upload-Complete": "?1", "Repr-Digest": fields.repr_digest(upload.sha256)})
        return JSONResponse(body, status_code=200, headers=headers)
    headers.update(_state(_context(request), upload))
    return Response(status_code=201 if location else 204, headers=headers)


def _state(ctx: Context, upload: Upload) -> dict[str, str]:
    done = upload.state == DONE
    headers = {
        "Upload-Complete": "?1" if done else "?0",
        "Upload-Offset": str(upload.offset),
        "Upload-Limit": _limits(ctx, None if done else upload.expires_at),
    }
    if upload.length is not None:
        headers["Upload-Length"] = str(upload.length)
    return headers


@resumable_endpoint
async def offset(request: Request) -> Response:
    """HEAD (or GET, which the draft allows and gives no content)."""
    ctx = _context(request)
    upload = await lifecycle.current(ctx, request.path_params["upload_id"], _principal(request))
    return Response(status_code=204, headers={**_state(ctx, upload), "Cache-Control": "no-store"})


@resumable_endpoint
async def append(request: Request) -> Response:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != PARTIAL_UPLOAD:
        raise errors.INVALID_PARTIAL_TYPE
    at = fields.integer(request.headers.get("upload-offset"))
    if at is None:
        raise errors.MISSING_DRAFT_OFFSET
    complete = fields.boolean(request.headers.get("upload-complete"))
    if complete is None:
        raise errors.MISSING_COMPLETE
    upload = await receive.write(
        _context(request),
        request.path_params["upload_id"],
        _principal(request),
        _chunk(request, at, complete, fields.integer(request.headers.get("upload-length"))),
    )
    return _answer(request, upload, None)


@resumable_endpoint
async def cancel(request: Request) -> Response:
    await lifecycle.terminate(
        _context(request), request.path_params["upload_id"], _principal(request)
    )
    return Response(status_code=204)


routes = [
    route("/resumable/", OPTIONS=options, POST=create, name="resumable:create"),
    route(
        "/resumable/{upload_id:str}",
        GET=offset,
        PATCH=append,
        DELETE=cancel,
        name="resumable:upload",
    ),
]
