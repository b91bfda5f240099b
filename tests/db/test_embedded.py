"""SQLite writers take turns (app/db/embedded.py): concurrent transactions that read, then
write, and statements that write through ``fetch_*``, neither fail with "database is locked" nor
lose an update — whatever SQLite's own busy timeout (here far shorter than the writers queued
behind each other)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from app.db.embedded import SQLiteDatabase

pytestmark = pytest.mark.anyio

COUNTER = sa.table("counter", sa.column("value", sa.Integer))
WRITERS = 40


@asynccontextmanager
async def counter(tmp_path: Path) -> AsyncIterator[SQLiteDatabase]:
    """A database holding a counter at 0, whose busy timeout is far too short to wait in."""
    db = SQLiteDatabase(f"sqlite+aiosqlite:///{tmp_path / 'turns.sqlite3'}", timeout=0.01)
    await db.connect()
    try:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("CREATE TABLE counter (value INTEGER NOT NULL)")
        await db.execute(sa.insert(COUNTER).values(value=0))
        yield db
    finally:
        await db.disconnect()


async def test_concurrent_read_then_write_transactions_all_succeed_in_turn(
    tmp_path: Path,
) -> None:
    async with counter(tmp_path) as db:

        async def increment() -> None:
            async with db.transaction():
                value = await db.fetch_val(sa.select(COUNTER.c.value))
                await db.execute(sa.update(COUNTER).values(value=value + 1))
                async with db.transaction():  # a savepoint: the same turn, taken again
                    await db.execute(sa.update(COUNTER).values(value=COUNTER.c.value + 1))

        async with anyio.create_task_group() as group:
            for _ in range(WRITERS):
                group.start_soon(increment)
        assert await db.fetch_val(sa.select(COUNTER.c.value)) == 2 * WRITERS


async def test_writes_through_fetch_wait_for_the_turn(tmp_path: Path) -> None:
    """``UPDATE … RETURNING`` goes through ``fetch_one``: it waits for the writer holding the
    turn instead of failing in SQLite's busy handler (31 of 400 uploads got a 503 so)."""
    async with counter(tmp_path) as db:
        bump = sa.update(COUNTER).values(value=COUNTER.c.value + 1).returning(COUNTER.c.value)
        async with db.transaction():
            await db.execute(sa.update(COUNTER).values(value=COUNTER.c.value + 1))
            # SQLite's write lock is held until this block ends. Without the turn the writers
            # below fail after the 0.01 s busy timeout, well within the time given to them.
            writers = [asyncio.ensure_future(db.fetch_one(bump)) for _ in range(WRITERS)]
            done, _ = await asyncio.wait(writers, timeout=0.5)
            assert not done
        values = sorted(row[0] for row in await asyncio.gather(*writers))
        assert values == list(range(2, WRITERS + 2))
        fetched = await db.fetch_all(sa.update(COUNTER).values(value=0).returning(COUNTER.c.value))
        assert [row[0] for row in fetched] == [0]
