"""The ASGI servers the gateway runs under (setting ``server``), each in this process and event
loop, each stopped by SIGINT/SIGTERM after ``drain`` has told the PATCHes in flight to save
what they received.

uvicorn is the default, with httptools, a deadline for request heads and a larger read-ahead
(``uvicorn_protocol.py``): at 400 concurrent uploads it takes 1.1-1.5x hypercorn's throughput in
less memory, and answers HEADs in half the time (bench/RESULTS.md). hypercorn stays for HTTP/2
(h2c: the gateway has no TLS of its own, nginx brings TLS and HTTP/2 in production). granian is
not offered: its embedded server (the only way to run it in this loop, with our signals) cut
downloads short and stalled concurrent uploads in the benchmark (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Any

from starlette.types import ASGIApp

from app.settings import Settings

# Connections the kernel queues for accepting (hypercorn's default: 100): a burst of a few
# thousand new connections overflowed that, and the clients dropped waited a second for their
# SYN to be sent again (uvicorn's default is this already).
LISTEN_BACKLOG = 2048
# The ASGI extension by which the application hands the server a region of an open file to send
# itself (uvicorn here, through uvicorn_protocol.py; hypercorn is sent the bytes).
ZERO_COPY = "http.response.zerocopysend"


async def serve(
    app: ASGIApp, settings: Settings, host: str, port: int, drain: Callable[[], None]
) -> None:
    stop = asyncio.Event()

    def shut_down() -> None:
        drain()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shut_down)
    runners = {"hypercorn": _hypercorn, "uvicorn": _uvicorn}
    await runners[settings.server](app, settings, host, port, stop)


async def _hypercorn(
    app: ASGIApp, settings: Settings, host: str, port: int, stop: asyncio.Event
) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None  # RequestLog writes one line per request
    config.errorlog = logging.getLogger("hypercorn.error")
    # Closes idle connections, and those whose request head never completes (slowloris).
    # No read_timeout: it would also cut a long download to a client that sends nothing.
    config.keep_alive_timeout = settings.keep_alive_timeout_seconds
    config.backlog = LISTEN_BACKLOG
    config.graceful_timeout = settings.shutdown_timeout_seconds
    # Body messages a request may have read ahead of the application (hypercorn's default: 10,
    # 640 KiB a connection): at 400 uploads of 25 MiB the peak RSS was 474 MiB with 10 and
    # 302 MiB with 2, at the same throughput (bench/RESULTS.md). uvicorn pauses at 64 KiB.
    config.max_app_queue_size = 2
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


async def _uvicorn(
    app: ASGIApp, settings: Settings, host: str, port: int, stop: asyncio.Event
) -> None:
    import uvicorn

    from app.uvicorn_protocol import GatewayProtocol

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,  # RequestLog writes one line per request
        timeout_keep_alive=round(settings.keep_alive_timeout_seconds),
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
        lifespan="on",
        # The gateway reads Forwarded/X-Forwarded-For itself, from its trusted proxies only
        # (``trusted_proxies``); uvicorn's own rewriting of the client would come first.
        proxy_headers=False,
        # The C parser (httptools, pinned: ~1.1x h11's throughput at 400 uploads), with a
        # deadline for request heads (slowloris), which uvicorn has not, and 256 KiB of body
        # read ahead instead of 64.
        http=GatewayProtocol,
    )

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """The signals are ours (``serve``): they drain before the server stops."""
            yield

    server = Server(config)
    await _until(stop, server.serve(), lambda: setattr(server, "should_exit", True))


async def _until(stop: asyncio.Event, serving: Any, ask_to_stop: Callable[[], None]) -> None:
    """Run ``serving`` until it ends; when ``stop`` is set, ask it to stop and wait for it."""
    task = asyncio.ensure_future(serving)
    waiting = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        ask_to_stop()
    waiting.cancel()
    await task
