"""What a PATCH keeps of its body while it waits for more of it: nothing it has stored.

At 400 uploads stalled on a slow store, each PATCH waiting for the client kept the body message
it had last received, about 128 KiB each (bench/RESULTS.md, optimisation 23).
"""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from app.auth.principal import Principal
from app.context import open_context
from app.settings import Settings
from app.tus import lifecycle, receive
from app.tus.body import BodyReader

pytestmark = pytest.mark.anyio

OWNER = Principal(id="owner", name="owner", roles=frozenset())
KiB = 1024


async def test_a_patch_waiting_for_more_of_its_body_holds_none_of_what_it_stored(
    tmp_path: Path,
) -> None:
    first = os.urandom(300 * KiB)  # more than a batch: stored before the next message
    last = os.urandom(100 * KiB)
    held_by_the_test = sys.getrefcount(first)
    waiting = asyncio.Event()
    go_on = asyncio.Event()
    sent = 0

    async def client() -> dict[str, object]:
        nonlocal sent
        sent += 1
        if sent == 1:
            return {"type": "http.request", "body": first, "more_body": True}
        waiting.set()
        await go_on.wait()
        return {"type": "http.request", "body": last, "more_body": False}

    async with AsyncExitStack() as stack:
        ctx = await open_context(Settings(data_dir=tmp_path), stack)
        size = len(first) + len(last)
        upload = await lifecycle.create(ctx, OWNER, lifecycle.NewUpload(length=size, metadata=""))
        chunk = receive.Chunk(0, BodyReader(client, idle_timeout=60))
        patch = asyncio.create_task(receive.write(ctx, upload.id, OWNER, chunk))
        await waiting.wait()

        assert sys.getrefcount(first) == held_by_the_test

        go_on.set()
        done = await patch
        assert done.offset == size
