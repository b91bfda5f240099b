"""Migrations build exactly the schema the queries expect, once, on both databases."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from databases import Database

from app import db as database
from app.db.migrations import MIGRATIONS, migrate
from app.db.schema import metadata

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    postgres_url: str = request.getfixturevalue("postgres_url")
    return postgres_url


async def _columns(db: Database, table: str) -> set[str]:
    if database.is_sqlite(db):
        rows = await db.fetch_all(f"PRAGMA table_info({table})")
        return {row["name"] for row in rows}
    rows = await db.fetch_all(
        "SELECT column_name FROM information_schema.columns WHERE table_name = :table",
        {"table": table},
    )
    return {row["column_name"] for row in rows}


async def test_migrations_apply_once_and_match_the_tables(url: str) -> None:
    db = await database.connect(url)
    try:
        assert await migrate(db) == [version for version, _, _ in MIGRATIONS]
        assert await migrate(db) == []
        for table in metadata.sorted_tables:
            assert await _columns(db, table.name) == {column.name for column in table.columns}
    finally:
        await db.disconnect()


async def test_instances_migrating_at_once_apply_each_migration_once(url: str) -> None:
    results: list[list[int]] = []

    async def one() -> None:
        db = await database.connect(url)
        try:
            results.append(await migrate(db))
        finally:
            await db.disconnect()

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(one)
    assert sorted(results, key=len) == [[], [], [version for version, _, _ in MIGRATIONS]]
