"""Bytes from a store to the socket, never piling up in between.

A copy is opened by reading its first chunk before the answer starts: a copy whose bytes are
missing or whose store is down is then noticed while the next copy can still be tried and the
status is still ours to choose. After that, chunks go out one at a time as the client takes
them (the server waits for each write to drain), so memory stays bounded whatever the file
size. However the answer ends — sent, failed, or the client gone — the read is closed at once,
releasing its file or S3 connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence

from starlette.exceptions import HTTPException
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.context import Context
from app.db.downloads import StoredCopy
from app.download.ranges import Span
from app.storage.errors import StorageError

log = logging.getLogger("tusgate.download")
RETRY_AFTER_SECONDS = 5


async def open_copy(
    ctx: Context, copies: Sequence[StoredCopy], span: Span
) -> tuple[StoredCopy, AsyncGenerator[bytes, None]]:
    """The first of ``copies`` that yields its bytes, and those bytes; else 503."""
    for copy in copies:
        chunks = ctx.stores[copy.location].read(copy.store_key, span.start, span.stop)
        try:
            first = await anext(chunks, b"")
        except StorageError as exc:
            log.warning("copy of %s in %r unreadable: %r", copy.store_key, copy.location, exc)
            continue
        return copy, _starting_with(first, chunks)
    raise HTTPException(
        503,
        "no copy of the file can be read now; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


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
    """A streaming answer that closes its source however it ends."""

    def __init__(
        self, chunks: AsyncGenerator[bytes, None], status_code: int, headers: dict[str, str]
    ) -> None:
        super().__init__(chunks, status_code=status_code, headers=headers)
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._chunks.aclose()
