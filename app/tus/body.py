"""Reading a request body from ASGI ``receive``, in a way that can be told to stop.

A PATCH reads until the body ends, the client goes away, the body stalls for longer than the
idle timeout, or ``stop()`` is called (another request wants this upload, or the instance is
shutting down). In every case the caller then commits what it has: the reason only decides
what the response says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import Enum

import anyio
from starlette.types import Receive


class End(Enum):
    COMPLETE = "complete"  # the client sent the whole body
    DISCONNECTED = "disconnected"
    IDLE = "idle"  # no byte for idle_timeout seconds
    STOPPED = "stopped"  # stop() was called


class BodyReader:
    def __init__(self, receive: Receive, idle_timeout: float) -> None:
        self._receive = receive
        self._idle_timeout = idle_timeout
        self._scope: anyio.CancelScope | None = None
        self._stop_requested = False
        self.end: End | None = None

    def stop(self) -> None:
        self._stop_requested = True
        if self._scope is not None:
            self._scope.cancel()

    async def chunks(self) -> AsyncIterator[bytes]:
        while self.end is None:
            if self._stop_requested:
                self.end = End.STOPPED
                return
            with anyio.CancelScope(deadline=anyio.current_time() + self._idle_timeout) as scope:
                self._scope = scope
                message = await self._receive()
            self._scope = None
            if scope.cancelled_caught:
                self.end = End.STOPPED if self._stop_requested else End.IDLE
                return
            if message["type"] == "http.disconnect":
                self.end = End.DISCONNECTED
                return
            if not message.get("more_body", False):
                self.end = End.COMPLETE
            body: bytes = message.get("body", b"")
            if body:
                yield body
