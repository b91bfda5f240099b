"""Bytes from a store to the socket, never piling up in between.

A copy is opened by reading its first chunk before the answer starts: a copy whose bytes are
missing or whose store is down is then noticed while the next copy can still be tried and the
status is still ours to choose. After that, chunks go out one at a time as the client takes
them (the server waits for each write to drain), so memory stays bounded whatever the file
size. However the answer ends — sent, failed, or the client gone — the read is closed at once,
releasing its file or S3 connection, and the download's quota slot is released.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import anyio
from starlette.exceptions import HTTPException
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app import metrics
from app.context import Context
from app.db.downloads import StoredCopy
from app.download.ranges import Span
from app.storage.errors import StorageError

log = logging.getLogger("tusgate.download")
RETRY_AFTER_SECONDS = 5
ALIVE_SECONDS = 15.0


async def open_copy(
    ctx: Context, copies: Sequence[StoredCopy], span: Span
) -> tuple[StoredCopy, AsyncGenerator[bytes, None]] | None:
    """The first of ``copies`` that yields its bytes, and those bytes; None if none does."""
    for copy in copies:
        chunks = ctx.stores[copy.location].read(copy.store_key, span.start, span.stop)
        try:
            with metrics.timed(metrics.STORE_DURATION, copy.location, "open"):
                first = await anext(chunks, b"")
        except StorageError as exc:
            log.warning("copy of %s in %r unreadable: %r", copy.store_key, copy.location, exc)
            continue
        return copy, _starting_with(first, chunks)
    return None


def unavailable(reason: str = "no copy of the file can be read now; retry later") -> HTTPException:
    return HTTPException(503, reason, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _starting_with(
    first: bytes, rest: AsyncGenerator[bytes, None]
) -> AsyncGenerator[bytes, None]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()


class StoreStream(StreamingResponse):
    """A streaming answer that closes its source, and calls ``done``, however it ends; ``alive``
    is called at most every ``ALIVE_SECONDS`` while bytes flow (to renew a download slot)."""

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        status_code: int,
        headers: dict[str, str],
        *,
        alive: Callable[[], Awaitable[None]],
        done: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(_signalling(chunks, alive), status_code=status_code, headers=headers)
        self._chunks = chunks
        self._done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._chunks.aclose()
                await self._done()


async def _signalling(
    chunks: AsyncGenerator[bytes, None], alive: Callable[[], Awaitable[None]]
) -> AsyncGenerator[bytes, None]:
    last = time.monotonic()
    async for chunk in chunks:
        yield chunk
        if time.monotonic() - last > ALIVE_SECONDS:
            await alive()
            last = time.monotonic()
