"""Registering an upload's bytes in the catalogue, against both databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app import db as database
from app.db import files as file_queries
from app.db import uploads as queries
from app.db.migrations import migrate
from app.db.schema import file_copies, pending_deletions
from app.db.uploads import COMPLETING, DONE
from tests.db.test_migrations import url  # noqa: F401  (the sqlite/postgres fixture)
from tests.db.test_uploads import _upload

pytestmark = pytest.mark.anyio


async def test_a_second_completion_of_one_upload_changes_nothing(url: str) -> None:  # noqa: F811
    """Found by tests/e2e/test_crash_points.py: two completions of one upload (a holder whose
    lock expired under load, and a HEAD's) both registered it; the second took the upload's own
    object for an older copy of the same file and deleted it, losing the file."""
    db = await database.connect(url)
    try:
        await migrate(db)
        upload = replace(_upload("twice", 300, 300), state=COMPLETING)
        await queries.insert(db, upload)
        at = datetime.now(UTC)
        new = file_queries.NewFile(
            sha256="a" * 64,
            size=300,
            location=upload.location,
            store_key="twice",
            owner=upload.owner,
            name=None,
            content_type=None,
            upload_id=upload.id,
            created_at=at,
            expires_at=at + timedelta(days=30),
        )
        assert await file_queries.register(db, new) == file_queries.Registered(None, held=False)
        assert await file_queries.register(db, new) is None
        assert await db.fetch_all(pending_deletions.select()) == []
        [copy] = await db.fetch_all(file_copies.select())
        assert copy["store_key"] == "twice"
        stored = await queries.get(db, upload.id)
        assert stored is not None
        assert (stored.state, stored.sha256, stored.store_key) == (DONE, "a" * 64, None)
    finally:
        await db.disconnect()
