"""Files sent by the server itself (app/uvicorn_protocol.py, the ``ZERO_COPY`` extension), under
a real uvicorn on a socket: an application's file regions arrive whole and in order with the
bytes it sends between them, through the kernel's ``sendfile``, and the connection then serves
its next request; a region past the announced length is refused; a client gone in the middle
costs the server nothing."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from anyio.abc import SocketAttribute

from app.servers import ZERO_COPY
from app.uvicorn_protocol import GatewayProtocol

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """uvicorn with the gateway's protocol, serving ``app`` on a free port: its base URL."""
    config = uvicorn.Config(app, http=GatewayProtocol, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # connections wait in the queue until the server accepts them
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [sock])
            try:
                yield f"http://127.0.0.1:{sock.getsockname()[1]}"
            finally:
                server.should_exit = True


def start(length: int) -> dict[str, Any]:
    headers = [(b"content-length", str(length).encode())]
    return {"type": "http.response.start", "status": 200, "headers": headers}


async def test_regions_and_bytes_between_them_arrive_in_order_through_sendfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * MiB + 5)
    path = tmp_path / "file"
    path.write_bytes(data)
    sent_by_kernel: list[int] = []
    sendfile = os.sendfile

    def counted(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        sent = sendfile(out_fd, in_fd, offset, count)
        sent_by_kernel.append(sent)
        return sent

    monkeypatch.setattr(os, "sendfile", counted)
    clients: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert ZERO_COPY in scope["extensions"]
        clients.append(scope["client"])
        with path.open("rb") as file:
            await send(start(len(data) - 10))
            region = {"type": ZERO_COPY, "file": file, "more_body": True}
            await send({**region, "offset": 10, "count": MiB})
            between = {"type": "http.response.body", "body": data[10 + MiB : 11 + MiB]}
            await send({**between, "more_body": True})
            await send({**region, "offset": 11 + MiB, "count": len(data) - 11 - MiB})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with serving(app) as url, httpx.AsyncClient() as client:
        for _ in range(2):
            response = await client.get(url)
            assert response.status_code == 200
            assert response.content == data[10:]
    assert clients[0] == clients[1]  # one connection, kept alive after the first answer
    assert sum(sent_by_kernel) == 2 * (len(data) - 11)  # all but the byte sent between


async def test_a_region_past_the_announced_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x" * 100)
    refused: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with path.open("rb") as file:
            await send(start(50))
            try:
                await send({"type": ZERO_COPY, "file": file, "offset": 0, "count": 100})
            except RuntimeError as exc:
                refused.append(str(exc))
                raise

    async with serving(app) as url, httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url)
    assert refused == ["Response content longer than Content-Length"]


async def test_a_client_gone_in_the_middle_ends_the_answer_quietly(tmp_path: Path) -> None:
    size = 256 * MiB  # far more than the socket buffers hold
    path = tmp_path / "file"
    with path.open("wb") as file:
        file.truncate(size)
    ended = anyio.Event()
    outcome: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            with path.open("rb") as file:
                await send(start(size))
                await send({"type": ZERO_COPY, "file": file, "offset": 0, "count": size})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            outcome.append("returned")
        finally:
            ended.set()

    async with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await stream.receive(MiB)).startswith(b"HTTP/1.1 200")
            raw = stream.extra(SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        with anyio.fail_after(10):
            await ended.wait()
    assert outcome == ["returned"]
