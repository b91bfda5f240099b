"""uvicorn's HTTP/1.1 protocol (httptools), with a deadline for every request head.

uvicorn closes a connection only once it has been idle ``timeout_keep_alive`` after a response:
a new connection that sends nothing, or a request head sent a byte at a time (slowloris), held
its connection for ever (2,100 of them still open after 60 s: tests/e2e/test_slow_clients.py),
whereas hypercorn closes them. Here a connection is closed when no complete request head has
arrived within ``timeout_keep_alive`` of its opening or of its last response. A request body,
and the response however long it takes, are not under the deadline: the PATCH's own idle
timeout (``patch_idle_timeout_seconds``) watches bodies.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadDeadlineProtocol(HttpToolsProtocol):
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # a head already received, served next
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.timeout_keep_alive, self._expire)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _expire(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
