"""SQLite queries take one trip to the connection's thread each (app/db/backends.py), where stock
``databases`` takes three, and answer as stock does: records by column name, None for no row,
the new row's id for an INSERT — but the rows changed for an UPDATE, where stock answered the id
of the connection's last INSERT. Connections, each with a thread, are opened up to a bound and
kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import pytest
import sqlalchemy as sa

from app import db as database
from app.db.backends import SQLITE_CONNECTIONS

pytestmark = pytest.mark.anyio

ITEMS = sa.table("items", sa.column("id", sa.Integer), sa.column("name", sa.String))


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions sent to a connection's thread, by name, as they are sent."""
    sent: list[str] = []
    original: Any = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, function: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(function, "__name__", repr(function)))
        return await original(self, function, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return sent


async def test_each_query_is_one_trip_and_answers_as_stock(
    tmp_path: Path, trips: list[str]
) -> None:
    db = await database.connect(f"sqlite:///{tmp_path / 'trips.db'}")
    try:
        await db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        await db.execute(sa.insert(ITEMS).values(id=7, name="a"))  # warm the connection pool
        del trips[:]

        assert await db.execute(sa.insert(ITEMS).values(name="b")) == 8
        assert await db.execute(sa.update(ITEMS).values(name="c")) == 2
        rows = await db.fetch_all(sa.select(ITEMS).order_by(ITEMS.c.id))
        assert [(row["id"], row["name"]) for row in rows] == [(7, "c"), (8, "c")]
        row = await db.fetch_one(sa.select(ITEMS).where(ITEMS.c.id == 8))
        assert row is not None
        assert row["name"] == "c"
        assert await db.fetch_one(sa.select(ITEMS).where(ITEMS.c.id == 9)) is None
        assert await db.fetch_val(sa.select(sa.func.count()).select_from(ITEMS)) == 2

        assert trips == ["_execute", "_execute", "_fetch", "_fetch", "_fetch", "_fetch"]
    finally:
        await db.disconnect()


async def test_many_queries_at_once_share_a_bounded_set_of_kept_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    original: Any = aiosqlite.connect

    def counted(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
        opened.append("connect")
        return original(*args, **kwargs)

    monkeypatch.setattr(aiosqlite, "connect", counted)
    db = await database.connect(f"sqlite:///{tmp_path / 'pool.db'}")
    answers: list[int] = []

    async def read(number: int) -> None:
        answers.append(await db.fetch_val(sa.select(sa.literal(number))))

    try:
        for _ in range(2):
            async with anyio.create_task_group() as tasks:
                for number in range(200):
                    tasks.start_soon(read, number)
        # Stock, and with only some connections kept, each of 200 readers opened its own.
        assert sorted(answers) == sorted(list(range(200)) * 2)
        assert 1 < len(opened) <= SQLITE_CONNECTIONS
    finally:
        await db.disconnect()
