"""Compiled statements kept between calls (app/db/compiled.py): a statement of a known shape
runs with its own values, never with those of the statement first compiled in that shape."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app import db as database
from app.db import uploads as queries
from app.db.compiled import Compilations
from app.db.migrations import migrate
from app.db.schema import file_owners, files, uploads
from app.db.uploads import RECEIVING
from tests.db.test_migrations import url  # noqa: F401  (the sqlite/postgres fixture)
from tests.db.test_uploads import _upload

pytestmark = pytest.mark.anyio

DIALECTS = [sqlite.dialect(paramstyle="qmark"), postgresql.asyncpg.dialect()]


def _statements(n: int) -> list[Any]:
    """Statements of the gateway's kinds, with values that differ with ``n``."""
    return [
        uploads.select().where(uploads.c.id == f"id-{n}"),
        sa.select(sa.func.coalesce(sa.func.sum(files.c.size), n))
        .select_from(file_owners.join(files, files.c.sha256 == file_owners.c.sha256))
        .where(file_owners.c.owner == f"owner-{n}"),
        uploads.update()
        .where(uploads.c.id == f"id-{n}")
        .where(uploads.c.upload_offset == n)
        .values(upload_offset=n + 1, store_state={"part": n}, partials=[f"p{n}"])
        .returning(uploads.c.id),
        uploads.select().where(uploads.c.state == RECEIVING).limit(n + 1),
    ]


def _kept(dialect: Any) -> Compilations[Any]:
    """Compilations that keep the compiled statement itself as the shape."""
    return Compilations(dialect, lambda compiled: compiled)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_known_shape_is_compiled_once_and_carries_the_new_values(dialect: Any) -> None:
    compilations = _kept(dialect)
    for n in (1, 2, 3):
        for statement in _statements(n):
            fresh = statement.compile(dialect=dialect)
            found = compilations.find(statement)
            assert found is not None
            kept, values = found
            assert kept.string == fresh.string
            assert values == fresh.construct_params()
    kept_shapes = list(compilations._shapes.values())
    assert len(kept_shapes) == len(_statements(0))
    assert None not in kept_shapes


def test_statements_whose_sql_depends_on_their_values_are_not_kept() -> None:
    compilations = _kept(DIALECTS[0])
    assert compilations.find(uploads.select().where(uploads.c.id.in_(["a", "b"]))) is None
    assert not compilations._shapes


def test_a_shape_whose_values_cannot_be_carried_over_is_compiled_each_time() -> None:
    compilations = _kept(DIALECTS[0])
    shape = uploads.select().where(uploads.c.id == sa.bindparam("id"))
    for value in ("one", "two"):
        assert compilations.find(shape.params(id=value)) is None


async def test_queries_of_one_shape_read_and_write_their_own_rows(url: str) -> None:  # noqa: F811
    db = await database.connect(url)
    try:
        await migrate(db)
        for n in range(5):
            await queries.insert(db, _upload(f"shape-{n}", n, 100))
        for n in range(5):
            upload = await queries.get(db, f"shape-{n}")
            assert upload is not None
            assert upload.offset == n
            assert await queries.advance(
                db, upload, n + 10, expires_at=None, length=None, reserved=100
            )
        offsets = [(await queries.get(db, f"shape-{n}")) for n in range(5)]
        assert [upload.offset for upload in offsets if upload] == [10, 11, 12, 13, 14]
    finally:
        await db.disconnect()
