"""A store ahead of the database (a PATCH between its two commits, or one a crash cut short):
HEAD reports the store's offset and records it, unless a PATCH of this instance holds the
upload and records it itself: then HEAD reports that PATCH's committed offset, or the
database's while its writer opens — never asking the store (app/tus/lifecycle.py:
``current``). A store behind the database (its commit record lost with the power) wins too: a
PATCH at the database's offset would write its bytes out of place."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from app.auth.principal import Principal
from app.context import Context, open_context
from app.db import uploads as queries
from app.settings import Settings
from app.tus import lifecycle, receive
from app.tus.errors import TusError
from tests.tus.bodies import body

pytestmark = pytest.mark.anyio

OWNER = Principal(id="owner", name="owner", roles=frozenset())


async def store_ahead(ctx: Context) -> str:
    """An upload of 10 bytes whose store holds 5, and whose database row says 0."""
    upload = await lifecycle.create(ctx, OWNER, lifecycle.NewUpload(length=10, metadata=""))
    async with ctx.stores[upload.location].open(lifecycle.stored(upload)) as writer:
        await writer.write([b"hello"])
        await writer.commit()
    return upload.id


async def recorded(ctx: Context, upload_id: str) -> int:
    row = await queries.get(ctx.db, upload_id)
    assert row is not None
    return row.offset


async def test_head_reports_a_store_ahead_and_records_it_unless_a_patch_here_will(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        ctx = await open_context(Settings(data_dir=tmp_path), stack)
        upload_id = await store_ahead(ctx)

        ctx.patching[upload_id] = 0  # held by a PATCH here whose writer is not open yet
        # The database's: the PATCH's writer adopts the store's offset when it opens (a PATCH
        # sent at 0 meanwhile gets a 409 and a HEAD then tells 5).
        assert (await lifecycle.current(ctx, upload_id, OWNER)).offset == 0
        assert await recorded(ctx, upload_id) == 0  # left to the PATCH: no writer's turn taken

        # What the PATCH's writer committed is reported without asking the store (which holds 5).
        ctx.patching[upload_id] = 7
        assert (await lifecycle.current(ctx, upload_id, OWNER)).offset == 7
        assert await recorded(ctx, upload_id) == 0

        del ctx.patching[upload_id]  # the PATCH ended without recording (crash, failure)
        assert (await lifecycle.current(ctx, upload_id, OWNER)).offset == 5
        assert await recorded(ctx, upload_id) == 5


async def test_a_store_behind_the_database_is_believed_and_nothing_is_written_out_of_place(
    tmp_path: Path,
) -> None:
    """Power lost before the store's commit record reached the disk (or with fsync off), after
    the database recorded the PATCH: the store holds 5 bytes where the database says 10."""
    data = b"hello, world"
    async with AsyncExitStack() as stack:
        ctx = await open_context(Settings(data_dir=tmp_path), stack)
        upload = await lifecycle.create(ctx, OWNER, lifecycle.NewUpload(len(data), metadata=""))
        async with ctx.stores[upload.location].open(lifecycle.stored(upload)) as writer:
            await writer.write([data[:5]])
            await writer.commit()
        await queries.advance(ctx.db, upload, 10, expires_at=None, length=len(data), reserved=0)

        with pytest.raises(TusError) as refused:  # the client's next PATCH, at 10
            await receive.write(ctx, upload.id, OWNER, receive.Chunk(10, body(data[10:])))
        assert refused.value.status == 409
        assert refused.value.reason.endswith("upload is at 5")
        assert (await lifecycle.current(ctx, upload.id, OWNER)).offset == 5  # its HEAD
        assert await recorded(ctx, upload.id) == 5

        done = await receive.write(ctx, upload.id, OWNER, receive.Chunk(5, body(data[5:])))
        key = lifecycle.stored(done).key
        assert b"".join([chunk async for chunk in ctx.stores[done.location].read(key)]) == data
