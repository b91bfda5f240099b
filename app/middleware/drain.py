"""Reads and discards what is left of a request body before the response goes out.

Answering before the body is read is normal here (401 before any byte, 409, 413, 460, a PATCH
told to let go...), but hypercorn (0.18) deadlocks on it: it hands body chunks to the
application through a bounded queue, and finishing the response makes it put an
``http.disconnect`` into that queue — which blocks forever when the queue is full, inside the
application's own ``send``. Draining the rest of the body first avoids that, and keeps the
connection usable for the client's next request, as Go's net/http does. A client that stops
sending is given up on after the idle timeout. While the instance shuts down, draining is cut
short (``HURRIED_SECONDS`` in all): what the client already sent is read away, so hypercorn's
queue does not block and the answer goes out at once, but a client still streaming a large
body is not waited for beyond that — the shutdown's own time limit settles the rest.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HURRIED_SECONDS = 1.0


class DrainBody:
    def __init__(
        self, app: ASGIApp, idle_timeout: float, hurry: Callable[[], bool] = lambda: False
    ) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.hurry = hurry  # true while shutting down

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        finished = False

        async def tracked_receive() -> Message:
            nonlocal finished
            message = await receive()
            finished = finished or _last(message)
            return message

        async def drained_send(message: Message) -> None:
            nonlocal finished
            if message["type"] == "http.response.start" and not finished:
                deadline = HURRIED_SECONDS if self.hurry() else float("inf")
                with anyio.move_on_after(deadline):
                    while not finished:
                        with anyio.move_on_after(self.idle_timeout) as timeout:
                            finished = _last(await receive())
                        if timeout.cancelled_caught:
                            break
            await send(message)

        await self.app(scope, tracked_receive, drained_send)


def _last(message: Message) -> bool:
    return message["type"] == "http.disconnect" or not message.get("more_body", False)
