"""The gateway's uvicorn protocol (app/uvicorn_protocol.py) stops reading a body only once more
than ``BODY_AHEAD`` bytes wait for the application, where uvicorn stopped past 64 KiB — after
every read from the socket — and starts again when the application takes them; with many
connections stopped at once (a slow store), the others stop past 64 KiB again."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import uvicorn
from uvicorn.server import ServerState

from app.uvicorn_protocol import BODY_AHEAD, FEW_WAITING, CountedFlow, GatewayProtocol

pytestmark = pytest.mark.anyio

KiB = 1024


class Transport:
    """What the protocol asks of its socket's transport, with the pauses counted."""

    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name)

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def write(self, data: bytes) -> None:
        pass


def connected(app: Any, length: int) -> tuple[GatewayProtocol, Transport]:
    """A connection whose PATCH head, announcing ``length`` bytes, has arrived."""
    config = uvicorn.Config(app, http=GatewayProtocol, lifespan="off", log_config=None)
    protocol = GatewayProtocol(config, ServerState(), {})
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(f"PATCH /files/x HTTP/1.1\r\nContent-Length: {length}\r\n\r\n".encode())
    return protocol, transport


async def test_the_body_is_read_ahead_up_to_body_ahead_then_paused_until_taken() -> None:
    taken: list[int] = []
    take, took = anyio.Event(), anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await take.wait()
        taken.append(len((await receive())["body"]))
        took.set()

    protocol, transport = connected(app, BODY_AHEAD + 100 * KiB)

    protocol.data_received(b"x" * (200 * KiB))  # one read: uvicorn itself paused here
    protocol.data_received(b"x" * (BODY_AHEAD - 200 * KiB))
    assert transport.paused == 0
    protocol.data_received(b"x")  # past BODY_AHEAD
    assert transport.paused == 1

    take.set()
    with anyio.fail_after(10):
        await took.wait()
    assert taken == [BODY_AHEAD + 1]
    assert transport.resumed == 1
    protocol.connection_lost(None)


async def test_with_many_connections_stopped_the_others_stop_past_64_kib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await anyio.sleep_forever()

    monkeypatch.setattr(CountedFlow, "stopped", FEW_WAITING)
    protocol, transport = connected(app, 200 * KiB)
    protocol.data_received(b"x" * (64 * KiB + 1))
    assert transport.paused == 1
    assert CountedFlow.stopped == FEW_WAITING + 1
    protocol.connection_lost(None)
    assert CountedFlow.stopped == FEW_WAITING  # a connection gone is no longer stopped
