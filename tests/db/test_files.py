"""Registering an upload's bytes in the catalogue and removing an ownership, against both
databases: each change and its audit event (the outbox of published events) are one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from databases import Database

from app import db as database
from app.db import audit
from app.db import files as file_queries
from app.db import uploads as queries
from app.db.audit import Event, Filter
from app.db.migrations import migrate
from app.db.schema import file_copies, file_owners, files, pending_deletions
from app.db.uploads import COMPLETING, DONE
from tests.db.test_migrations import url  # noqa: F401  (the sqlite/postgres fixture)
from tests.db.test_uploads import _upload

pytestmark = pytest.mark.anyio
SHA = "a" * 64


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:  # noqa: F811
    connected = await database.connect(url)
    try:
        await migrate(connected)
        yield connected
    finally:
        await connected.disconnect()


async def _completing(db: Database, upload_id: str) -> file_queries.NewFile:
    """An upload of 300 bytes whose bytes all arrived, and the file it makes."""
    upload = replace(_upload(upload_id, 300, 300), state=COMPLETING)
    await queries.insert(db, upload)
    at = datetime.now(UTC)
    return file_queries.NewFile(
        sha256=SHA,
        size=300,
        location=upload.location,
        store_key=upload_id,
        owner=upload.owner,
        name=None,
        content_type=None,
        upload_id=upload.id,
        created_at=at,
        expires_at=at + timedelta(days=30),
    )


def _completed(new: file_queries.NewFile) -> Event:
    return Event("upload.completed", new.owner, owner=new.owner, upload_id=new.upload_id)


async def _events(db: Database, action: str) -> list[Event]:
    return await audit.search(db, Filter(action=action), limit=10)


async def test_a_second_completion_of_one_upload_changes_nothing(db: Database) -> None:
    """Found by tests/e2e/test_crash_points.py: two completions of one upload (a holder whose
    lock expired under load, and a HEAD's) both registered it; the second took the upload's own
    object for an older copy of the same file and deleted it, losing the file."""
    new = await _completing(db, "twice")
    event = _completed(new)
    assert await file_queries.register(db, new, event) == file_queries.Registered(None, False)
    assert await file_queries.register(db, new, event) is None
    assert await db.fetch_all(pending_deletions.select()) == []
    [copy] = await db.fetch_all(file_copies.select())
    assert copy["store_key"] == "twice"
    stored = await queries.get(db, new.upload_id)
    assert stored is not None
    assert (stored.state, stored.sha256, stored.store_key) == (DONE, SHA, None)
    [recorded] = await _events(db, "upload.completed")
    assert (recorded.upload_id, recorded.detail) == ("twice", {"duplicate": False})


async def test_the_same_bytes_again_are_recorded_as_a_duplicate(db: Database) -> None:
    first = await _completing(db, "first")
    await file_queries.register(db, first, _completed(first))
    again = await _completing(db, "again")
    registered = await file_queries.register(db, again, _completed(again))
    assert registered == file_queries.Registered(file_queries.Copy("local", "first"), False)
    newest, oldest = await _events(db, "upload.completed")
    assert (newest.upload_id, newest.detail) == ("again", {"duplicate": True})
    assert (oldest.upload_id, oldest.detail) == ("first", {"duplicate": False})


async def test_a_registration_whose_event_fails_leaves_the_upload_completing(
    db: Database,
) -> None:
    """The event is in the registration's transaction: when it cannot be written (here an
    actor the audit refuses), neither is the file, and the upload stays to be completed."""
    new = await _completing(db, "refused")
    broken = replace(_completed(new), actor=cast(Any, None))
    with pytest.raises(Exception, match=r"(?i)null"):
        await file_queries.register(db, new, broken)
    stored = await queries.get(db, new.upload_id)
    assert stored is not None
    assert stored.state == COMPLETING
    for table in (files, file_copies, file_owners):
        assert await db.fetch_all(table.select()) == []
    assert await _events(db, "upload.completed") == []


async def test_removing_an_ownership_records_its_event_once(db: Database) -> None:
    new = await _completing(db, "owned")
    await file_queries.register(db, new, _completed(new))
    expired = Event("file.expired", "system", owner=new.owner, sha256=SHA)
    removed = await file_queries.remove_owner(db, SHA, new.owner, expired)
    assert removed == [file_queries.Copy("local", "owned")]
    assert await file_queries.remove_owner(db, SHA, new.owner, expired) is None
    [recorded] = await _events(db, "file.expired")
    assert (recorded.owner, recorded.sha256) == (new.owner, SHA)
    broken = replace(expired, actor=cast(Any, None))
    other = await _completing(db, "other")
    await file_queries.register(db, other, _completed(other))
    with pytest.raises(Exception, match=r"(?i)null"):
        await file_queries.remove_owner(db, SHA, other.owner, broken)
    assert len(await db.fetch_all(file_owners.select())) == 1  # the removal rolled back


async def test_an_event_is_stamped_as_it_is_written(db: Database) -> None:
    """The events job publishes only rows stamped a while ago, trusting that by then every
    smaller id has committed: so the stamp is the insert's moment, not the Event's making."""
    new = await _completing(db, "stamped")
    event = _completed(new)
    made = datetime.now(UTC)
    await file_queries.register(db, new, event)
    [recorded] = await _events(db, "upload.completed")
    assert recorded.at is not None
    assert recorded.at.replace(tzinfo=UTC) >= made
