"""uvicorn's HTTP/1.1 protocol (httptools) as the gateway runs it: with a deadline for every
request head, and reading up to 256 KiB of a body ahead of the application.

The deadline: uvicorn closes a connection only once it has been idle ``timeout_keep_alive``
after a response, so a new connection that sends nothing, or a request head sent a byte at a
time (slowloris), held its connection for ever (2,100 of them still open after 60 s:
tests/e2e/test_slow_clients.py), whereas hypercorn closes them. Here a connection is closed
when no complete request head has arrived within ``timeout_keep_alive`` of its opening or of
its last response. A request body, and the response however long it takes, are not under the
deadline: the PATCH's own idle timeout (``patch_idle_timeout_seconds``) watches bodies.

The read-ahead: uvicorn stops reading the socket once 64 KiB of body wait for the application,
and a read brings up to 256 KiB, so it stopped after every read and started again at the next
``receive``: two ``epoll_ctl`` calls per read, each letting go of the GIL, 19 % of the event
loop at 400 concurrent uploads (bench/RESULTS.md). It stops past ``BODY_AHEAD`` now, which a
read alone never passes: only an application slower than its client makes it wait. When it
does for many connections at once (a slow store: 400 uploads on S3 peaked at 512 MiB instead
of 319), the connections beyond ``FEW_WAITING`` stop at uvicorn's 64 KiB again.

The body before the end: uvicorn drops the body bytes it holds when the client closes its side,
since ``receive`` answers ``http.disconnect`` from then on. With 64 KiB of read-ahead the end
of a body rarely came with its last bytes; with 256 KiB it mostly did, and a PATCH cut short
lost what it had received (tests/tus/test_patch.py). So at the client's end, while body bytes
wait, the connection stays open until the application has taken them.

Files: the application may send a region of an open file (``ZERO_COPY``, ASGI's zero-copy send
extension: downloads from the filesystem store). It goes out through ``loop.sendfile``, the
kernel's ``sendfile``: no read into Python, no copy into the socket, no thread. 400 downloads at
once ran 2.5x faster (bench/RESULTS.md, optimisation 20).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.servers import ZERO_COPY

BODY_AHEAD = 256 * 1024  # body bytes a connection may hold for the application
FEW_WAITING = 64  # connections stopped at once, past which the others stop at 64 KiB


class CountedFlow(FlowControl):
    """uvicorn's flow control, counting the connections whose reading is stopped."""

    stopped = 0

    def pause_reading(self) -> None:
        if not self.read_paused:
            CountedFlow.stopped += 1
        super().pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            CountedFlow.stopped -= 1
        super().resume_reading()


class GatewayProtocol(HttpToolsProtocol):
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = CountedFlow(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.flow.resume_reading()  # no longer stopped: gone
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol allows it
        """Keep the connection (half-)open while body bytes wait for the application: its next
        ``receive`` takes them and reads on, and the end comes again, then closes."""
        cycle = self.cycle
        if cycle is not None and cycle.body and not cycle.response_complete:
            self.flow.pause_reading()
            return True
        return None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {ZERO_COPY: {}}

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # this request's, not an upgrade
            cycle.send = _sending_files(cycle)  # type: ignore[method-assign,assignment]

    def on_body(self, body: bytes) -> None:
        """uvicorn's, with ``BODY_AHEAD`` where it has 64 KiB while few connections are
        stopped (see the module docstring)."""
        if (
            self.parser.should_upgrade() and self._should_upgrade()
        ) or self.cycle.response_complete:
            return
        self.cycle.body += body
        ahead = BODY_AHEAD if CountedFlow.stopped < FEW_WAITING else HIGH_WATER_LIMIT
        if len(self.cycle.body) > ahead:
            self.flow.pause_reading()
        self.cycle.message_event.set()

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


def _sending_files(cycle: RequestResponseCycle) -> Callable[[Any], Coroutine[Any, Any, None]]:
    """The cycle's ``send``, which also sends ``ZERO_COPY`` messages: file regions of a body
    whose length the response's ``Content-Length`` announced."""
    send = cycle.send

    async def sending(message: Any) -> None:
        if message["type"] != ZERO_COPY:
            return await send(message)
        if cycle.disconnected or cycle.transport.is_closing():
            return
        count = message["count"]
        if not cycle.response_started or cycle.response_complete or cycle.chunked_encoding:
            raise RuntimeError(f"{ZERO_COPY} needs a started response with a Content-Length")
        if count > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        loop = asyncio.get_running_loop()
        try:
            sent = await loop.sendfile(cycle.transport, message["file"], message["offset"], count)
        except ConnectionError:  # the client went away: as after uvicorn's own writes, quietly
            cycle.disconnected = True
            cycle.transport.close()
            return
        if sent != count:
            raise RuntimeError(f"file region ended after {sent} of {count} bytes")
        cycle.expected_content_length -= count
        if not message.get("more_body", False):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return sending
