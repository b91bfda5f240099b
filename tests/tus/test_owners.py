"""The owner check before a PATCH or DELETE asks for the upload's lock answers from what this
instance remembers (app/tus/owners.py), and from the database only for an upload it has not
seen: someone else's upload is 404 either way, without a lock asked for."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from app.auth.principal import Principal
from app.context import open_context
from app.db import uploads as queries
from app.settings import Settings
from app.tus import errors, lifecycle
from app.tus.owners import Owners

pytestmark = pytest.mark.anyio

OWNER = Principal(id="owner", name="owner", roles=frozenset())
STRANGER = Principal(id="stranger", name="stranger", roles=frozenset())


def test_the_least_recently_used_owner_goes_first() -> None:
    owners = Owners(capacity=2)
    owners.put("a", "alice")
    owners.put("b", "bob")
    assert owners.get("a") == "alice"
    owners.put("c", "carol")
    assert (owners.get("a"), owners.get("b"), owners.get("c")) == ("alice", None, "carol")


async def test_the_owner_check_asks_the_database_only_for_an_upload_not_seen_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AsyncExitStack() as stack:
        ctx = await open_context(Settings(data_dir=tmp_path), stack)
        upload = await lifecycle.create(ctx, OWNER, lifecycle.NewUpload(length=10, metadata=""))
        asked: list[str] = []
        get = queries.get

        async def counted(db: Any, upload_id: str) -> Any:
            asked.append(upload_id)
            return await get(db, upload_id)

        monkeypatch.setattr(queries, "get", counted)

        await lifecycle.check_owner(ctx, upload.id, OWNER)  # remembered since its creation
        with pytest.raises(errors.TusError) as refused:
            await lifecycle.check_owner(ctx, upload.id, STRANGER)
        assert refused.value.status == 404
        assert asked == []

        ctx.owners = Owners()  # another instance, or this one restarted
        with pytest.raises(errors.TusError) as refused:
            await lifecycle.check_owner(ctx, upload.id, STRANGER)
        assert refused.value.status == 404
        await lifecycle.check_owner(ctx, upload.id, OWNER)
        await lifecycle.check_owner(ctx, upload.id, OWNER)
        assert asked == [upload.id, upload.id]  # the stranger's, then the owner's once
