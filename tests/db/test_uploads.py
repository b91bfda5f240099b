"""The upload row's compare-and-set, against both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app import db as database
from app.db import uploads as queries
from app.db.migrations import migrate
from app.db.uploads import COMPLETING, RECEIVING, Upload
from tests.db.test_migrations import url  # noqa: F401  (the sqlite/postgres fixture)

pytestmark = pytest.mark.anyio


def _upload(upload_id: str, offset: int, length: int) -> Upload:
    return Upload(
        id=upload_id,
        owner="alice",
        state=RECEIVING,
        length=length,
        offset=offset,
        location="local",
        store_key=upload_id,
        created_at=datetime.now(UTC),
    )


@pytest.mark.parametrize("length", [1000, 300])  # a commit in the middle, and the last one
async def test_a_commit_accepts_the_offset_a_head_adopted_meanwhile(url: str, length: int) -> None:  # noqa: F811
    db = await database.connect(url)
    try:
        await migrate(db)
        upload = _upload(f"race-{length}", 100, length)
        await queries.insert(db, upload)
        # HEAD: the store's record says 300 (the PATCH committed there, not yet here).
        await queries.adopt_store_offset(db, upload, 300)
        assert await queries.advance(db, upload, 300, expires_at=None, length=None, reserved=length)
        stored = await queries.get(db, upload.id)
        assert stored is not None
        assert stored.offset == 300
        assert stored.state == (COMPLETING if length == 300 else RECEIVING)
        # Anything else that moved the row still refuses the update.
        assert not await queries.advance(
            db, upload, 400, expires_at=None, length=None, reserved=length
        )
    finally:
        await db.disconnect()
