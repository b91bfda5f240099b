"""A transaction whose task is cancelled still ends and gives its connection back, on both
databases. Stock ``databases`` lets the cancellation cut the ROLLBACK short as well, and the
connection is never released: PostgreSQL's pool shrinks by one each time, and SQLite's worker
thread lives on and keeps the process from exiting (a ``serve`` stopped a few milliseconds after
it started, while the sweeper was in a transaction, hung until it was killed)."""

from __future__ import annotations

import threading

import anyio
import asyncpg
import pytest
import sqlalchemy as sa

from app import db as database
from tests.db.test_migrations import url  # noqa: F401  (the sqlite/postgres fixture)

pytestmark = pytest.mark.anyio

ROWS = sa.table("cut_short", sa.column("value", sa.Integer))
REPEATS = 25  # more than the PostgreSQL pool holds (max_size=20)


async def test_a_cancelled_transaction_rolls_back_and_frees_its_connection(url: str) -> None:  # noqa: F811
    before = set(threading.enumerate())
    # Without the fix PostgreSQL waits forever: for a free connection, and to close its pool.
    with anyio.fail_after(60):
        db = await database.connect(url)
        try:
            await db.execute("CREATE TABLE cut_short (value INTEGER NOT NULL)")
            for _ in range(REPEATS):
                await _cancelled_inside_a_transaction(db)
            await db.execute(sa.insert(ROWS).values(value=2))
            assert await db.fetch_val(sa.select(sa.func.count()).select_from(ROWS)) == 1
        finally:
            await db.disconnect()
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=10)  # the connections' worker threads end once they are closed
        assert not thread.is_alive(), f"{thread.name} outlived the database"


async def _cancelled_inside_a_transaction(db: database.Database) -> None:
    wrote = anyio.Event()

    async def write_then_wait() -> None:
        async with db.transaction():
            await db.execute(sa.insert(ROWS).values(value=1))
            wrote.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(write_then_wait)
        await wrote.wait()
        group.cancel_scope.cancel()


async def test_a_failed_commit_frees_its_connection(postgres_url: str) -> None:
    """A deferred foreign key fails at COMMIT: the connection still goes back to the pool."""
    with anyio.fail_after(60):
        db = await database.connect(postgres_url)
        try:
            await db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            await db.execute(
                "CREATE TABLE child (parent INTEGER REFERENCES parent (id)"
                " DEFERRABLE INITIALLY DEFERRED)"
            )
            for _ in range(REPEATS):
                with pytest.raises(asyncpg.exceptions.ForeignKeyViolationError):
                    async with db.transaction():
                        await db.execute("INSERT INTO child VALUES (1)")
            assert await db.fetch_val("SELECT count(*) FROM child") == 0
        finally:
            await db.disconnect()
