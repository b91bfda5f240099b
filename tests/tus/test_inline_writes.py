"""Where a PATCH's batches are written and hashed (app/tus/receive.py: ``INLINE_PATCHES``): on
the event loop while few PATCHes are receiving, where a thread hop's wake-ups cost more than
the batch; in worker threads once many are, so that hashing spreads over the cores. The bytes
stored and their SHA-256 are the same either way."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from app.auth.principal import Principal
from app.context import open_context
from app.db.uploads import DONE
from app.settings import Settings
from app.storage.base import BlockingWriter
from app.tus import lifecycle, receive
from app.tus.checksum import Hash
from tests.tus.bodies import body

pytestmark = pytest.mark.anyio

OWNER = Principal(id="owner", name="owner", roles=frozenset())
MiB = 1024 * 1024


async def test_batches_are_written_on_the_loop_when_few_and_in_threads_when_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.current_thread()
    on_loop: list[bool] = []
    write_and_hash = receive._write_and_hash

    def recorded(writer: BlockingWriter, hashes: Sequence[Hash], batch: list[bytes]) -> None:
        on_loop.append(threading.current_thread() is loop_thread)
        write_and_hash(writer, hashes, batch)

    monkeypatch.setattr(receive, "_write_and_hash", recorded)
    data = os.urandom(6 * MiB + 123)
    half = 3 * MiB
    async with AsyncExitStack() as stack:
        ctx = await open_context(Settings(data_dir=tmp_path), stack)
        upload = await lifecycle.create(
            ctx, OWNER, lifecycle.NewUpload(length=len(data), metadata="")
        )

        await receive.write(ctx, upload.id, OWNER, receive.Chunk(0, body(data[:half])))
        assert on_loop == [True] * 3  # one batch per 1 MiB message; alone: no thread hop

        on_loop.clear()
        others = [lambda: None for _ in range(receive.INLINE_PATCHES)]
        ctx.receiving.update(others)  # as many PATCHes receiving as are written on the loop
        done = await receive.write(ctx, upload.id, OWNER, receive.Chunk(half, body(data[half:])))
        ctx.receiving.difference_update(others)
        assert on_loop == [False] * 4  # one more: every batch in a thread

        assert done.state == DONE
        assert done.sha256 == hashlib.sha256(data).hexdigest()
        key = lifecycle.stored(done).key
        stored = b"".join([chunk async for chunk in ctx.stores[done.location].read(key)])
        assert stored == data
