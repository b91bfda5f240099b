"""Bytes from a store to the socket, never piling up in between.

A copy is opened by reading its first chunk before the answer starts: a copy whose bytes are
missing or whose store is down is then noticed while the next copy can still be tried and the
status is still ours to choose. After that, chunks go out one at a time as the client takes
them (the server waits for each write to drain), so memory stays bounded whatever the file
size. However the answer ends — sent, failed, or the client gone — the read is closed at once,
releasing its file or S3 connection, and the download's quota slot is released.

Where the server sends files itself (the ASGI extension ``http.response.zerocopysend``, which
``app/uvicorn_protocol.py`` gives uvicorn) and the copy is a local file (``LocalFiles``), the
answer hands it the file in ``Region``s instead of bytes: ``sendfile`` moves them from the page
cache to the socket without Python touching them (400 downloads at once: bench/RESULTS.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import anyio
from starlette.exceptions import HTTPException
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from app import metrics
from app.context import Context
from app.db.downloads import StoredCopy
from app.download.ranges import Span
from app.servers import ZERO_COPY
from app.storage.base import LocalFiles, Store
from app.storage.errors import StorageError

log = logging.getLogger("tusgate.download")
RETRY_AFTER_SECONDS = 5
ALIVE_SECONDS = 15.0
# Bytes per sendfile hand-over; the access log counts each as sent once handed over, so a
# client gone in the middle is counted at most this much too high.
REGION = 16 * 1024 * 1024


@dataclass(frozen=True)
class Region:
    """Bytes ``[offset, offset + count)`` of an open file, for the server to send itself."""

    file: BinaryIO
    offset: int
    count: int


Piece = bytes | Region


async def open_copy(
    ctx: Context, copies: Sequence[StoredCopy], span: Span, *, zero_copy: bool
) -> tuple[StoredCopy, AsyncGenerator[Piece, None]] | None:
    """The first of ``copies`` that yields its bytes, and those bytes (as file ``Region``s with
    ``zero_copy``, where the store has local files); None if none does."""
    for copy in copies:
        store = ctx.stores[copy.location]
        try:
            with metrics.timed(metrics.STORE_DURATION, copy.location, "open"):
                pieces = await _opened(store, copy.store_key, span, zero_copy)
        except StorageError as exc:
            log.warning("copy of %s in %r unreadable: %r", copy.store_key, copy.location, exc)
            continue
        return copy, pieces
    return None


async def _opened(
    store: Store, key: str, span: Span, zero_copy: bool
) -> AsyncGenerator[Piece, None]:
    pieces: AsyncGenerator[Piece, None]
    if zero_copy and isinstance(store, LocalFiles):
        pieces = _regions(await store.open_file(key), span)
    else:
        pieces = store.read(key, span.start, span.stop)
    return _starting_with(await anext(pieces, b""), pieces)


async def _regions(file: BinaryIO, span: Span) -> AsyncGenerator[Piece, None]:
    try:
        for offset in range(span.start, span.stop, REGION):
            yield Region(file, offset, min(REGION, span.stop - offset))
    finally:
        file.close()


def unavailable(reason: str = "no copy of the file can be read now; retry later") -> HTTPException:
    return HTTPException(503, reason, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _starting_with(
    first: Piece, rest: AsyncGenerator[Piece, None]
) -> AsyncGenerator[Piece, None]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()


class StoreStream(StreamingResponse):
    """A streaming answer that closes its source, and calls ``done``, however it ends; ``alive``
    is called every ``ALIVE_SECONDS`` meanwhile (to renew a download slot), whether bytes flow
    or a slow client keeps the server waiting in the middle of a file region."""

    def __init__(
        self,
        chunks: AsyncGenerator[Piece, None],
        status_code: int,
        headers: dict[str, str],
        *,
        alive: Callable[[], Awaitable[None]],
        done: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__((), status_code=status_code, headers=headers)
        self._chunks = chunks
        self._alive = alive
        self._done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as renewal:
                renewal.start_soon(_renewing, self._alive)
                await super().__call__(scope, receive, send)
                renewal.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._chunks.aclose()
                await self._done()

    async def stream_response(self, send: Send) -> None:
        """Starlette's, which also hands file ``Region``s to the server."""
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        async for piece in self._chunks:
            await send(_message(piece))
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _message(piece: Piece) -> Message:
    if isinstance(piece, Region):
        region = {"file": piece.file, "offset": piece.offset, "count": piece.count}
        return {"type": ZERO_COPY, **region, "more_body": True}
    return {"type": "http.response.body", "body": piece, "more_body": True}


async def _renewing(alive: Callable[[], Awaitable[None]]) -> None:
    while True:
        await anyio.sleep(ALIVE_SECONDS)
        await alive()
