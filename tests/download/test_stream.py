"""Which pieces a download's answer is made of (app/download/stream.py): where the server sends
files itself, a local copy becomes file regions of at most ``REGION`` bytes covering the range
exactly, the file closed once they are sent; elsewhere, bytes. A copy that cannot be opened is
passed over either way. And the download's slot is renewed while a client is slow to take them."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import anyio
import pytest
from starlette.types import Message

from app.context import Context
from app.db.downloads import StoredCopy
from app.db.files import ONLINE
from app.download import stream
from app.download.ranges import Span
from app.download.stream import REGION, Piece, Region, StoreStream, open_copy
from app.storage.filesystem import ColdFilesystemStore, FilesystemStore
from app.storage.memory import MemoryStore
from tests.storage import finished_upload, new_id

pytestmark = pytest.mark.anyio


def context(stores: dict[str, Any]) -> Context:
    return cast(Context, SimpleNamespace(stores=stores))


async def stores(tmp_path: Path) -> dict[str, Any]:
    made = {
        "disk": FilesystemStore("disk", tmp_path / "disk"),
        "cold": ColdFilesystemStore("cold", tmp_path / "cold"),
        "memory": MemoryStore("memory"),
    }
    for store in made.values():
        await store.start()
    return made


async def test_a_local_copy_is_sent_as_file_regions_covering_the_range(tmp_path: Path) -> None:
    located = await stores(tmp_path)
    data = os.urandom(2 * REGION + 100)
    upload = await finished_upload(located["disk"], new_id(), data)
    copies = [
        StoredCopy("cold", upload.key, ONLINE),  # not restored: passed over
        StoredCopy("disk", upload.key, ONLINE),
    ]
    span = Span(7, 2 * REGION + 50)
    opened = await open_copy(context(located), copies, span, zero_copy=True)
    assert opened is not None
    copy, pieces = opened
    assert copy.location == "disk"
    first = await anext(pieces)
    assert isinstance(first, Region)
    assert os.pread(first.file.fileno(), 5, 7) == data[7:12]
    regions = [first] + [piece async for piece in pieces if isinstance(piece, Region)]
    assert [(r.offset, r.count) for r in regions] == [
        (7, REGION),
        (7 + REGION, REGION),
        (7 + 2 * REGION, 43),
    ]
    assert first.file.closed  # once the last region is handed over


async def test_without_the_extension_or_a_local_file_the_answer_is_bytes(tmp_path: Path) -> None:
    located = await stores(tmp_path)
    data = os.urandom(1000)
    for name, zero_copy in (("disk", False), ("memory", True)):
        upload = await finished_upload(located[name], new_id(), data)
        opened = await open_copy(
            context(located),
            [StoredCopy(name, upload.key, ONLINE)],
            Span(10, 990),
            zero_copy=zero_copy,
        )
        assert opened is not None
        assert [piece async for piece in opened[1]] == [data[10:990]]


async def test_the_slot_is_renewed_while_a_client_keeps_the_server_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "ALIVE_SECONDS", 0.01)
    renewals = 0
    renewed_thrice, done = anyio.Event(), anyio.Event()

    async def alive() -> None:
        nonlocal renewals
        renewals += 1
        if renewals == 3:
            renewed_thrice.set()

    async def finished() -> None:
        done.set()

    async def pieces() -> AsyncGenerator[Piece, None]:
        yield b"x"

    async def stalled_client(message: Message) -> None:
        if message.get("body"):
            await renewed_thrice.wait()  # the one write waits until the slot was renewed thrice

    async def connected() -> Message:
        await anyio.sleep_forever()
        raise AssertionError

    answer = StoreStream(pieces(), 200, {"Content-Length": "1"}, alive=alive, done=finished)
    scope = {"type": "http", "asgi": {"spec_version": "2.3"}, "method": "GET"}
    with anyio.fail_after(10):
        await answer(scope, connected, stalled_client)
    assert renewals >= 3
    assert done.is_set()
