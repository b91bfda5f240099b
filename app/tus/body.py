"""Reading a request body from ASGI ``receive``, in a way that can be told to stop.

A PATCH reads until the body ends, the client goes away, the body stalls for longer than the
idle timeout, or ``stop()`` is called (another request wants this upload, or the instance is
shutting down). In every case the caller then commits what it has: the reason only decides
what the response says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from enum import Enum

from starlette.types import Receive


class End(Enum):
    COMPLETE = "complete"  # the client sent the whole body
    DISCONNECTED = "disconnected"
    IDLE = "idle"  # no byte for idle_timeout seconds
    STOPPED = "stopped"  # stop() was called


class BodyReader:
    """The idle timer is asyncio's own, around each ``receive``: a body arrives in 64 KiB
    messages, and an anyio cancel scope per message cost more of the event loop than the
    message itself (bench/RESULTS.md). The gateway always serves on asyncio."""

    def __init__(self, receive: Receive, idle_timeout: float) -> None:
        self._receive = receive
        self._idle_timeout = idle_timeout
        self._timeout: asyncio.Timeout | None = None
        self._stop_requested = False
        self.end: End | None = None

    def stop(self) -> None:
        self._stop_requested = True
        timeout = self._timeout
        # One that has just fired cannot be moved (RuntimeError): it ends the read anyway.
        if timeout is not None and not timeout.expired():
            timeout.reschedule(asyncio.get_running_loop().time())

    async def chunks(self) -> AsyncIterator[bytes]:
        while self.end is None:
            if self._stop_requested:
                self.end = End.STOPPED
                return
            try:
                async with asyncio.timeout(self._idle_timeout) as self._timeout:
                    message = await self._receive()
            except TimeoutError:
                self.end = End.STOPPED if self._stop_requested else End.IDLE
                return
            finally:
                self._timeout = None
            if message["type"] == "http.disconnect":
                self.end = End.DISCONNECTED
                return
            if not message.get("more_body", False):
                self.end = End.COMPLETE
            # Handed over, not kept: a local would hold these bytes while the next ``receive``
            # waits, one body message per waiting PATCH (bench/RESULTS.md, optimisation 23).
            if message.get("body"):
                yield message.pop("body")
