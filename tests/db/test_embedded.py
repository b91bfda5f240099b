"""SQLite writers take turns (app/db/embedded.py): concurrent transactions that read, then
write, neither fail with "database is locked" nor lose an update — whatever SQLite's own busy
timeout (here far shorter than the transactions queued behind each other)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from app.db.embedded import SQLiteDatabase

pytestmark = pytest.mark.anyio

COUNTER = sa.table("counter", sa.column("value", sa.Integer))
WRITERS = 40


async def test_concurrent_read_then_write_transactions_all_succeed_in_turn(
    tmp_path: Path,
) -> None:
    db = SQLiteDatabase(f"sqlite+aiosqlite:///{tmp_path / 'turns.sqlite3'}", timeout=0.01)
    await db.connect()
    try:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("CREATE TABLE counter (value INTEGER NOT NULL)")
        await db.execute(sa.insert(COUNTER).values(value=0))

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
    finally:
        await db.disconnect()
