"""The ``Restorer`` capability, one suite for both cold backends: an archived object cannot be
read until it is restored, a restore is idempotent, and it lasts only its days."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.files.copy import CorruptSource, copy_verified
from app.settings import S3Settings
from app.storage.base import Restorer, Store
from app.storage.errors import ObjectArchived, ObjectNotFound
from app.storage.filesystem import ColdFilesystemStore, FilesystemStore
from app.storage.s3 import S3Store
from tests.storage.conftest import MAX_SIZE, started

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["filesystem", "s3"])
async def cold(
    request: pytest.FixtureRequest, tmp_path: Path, spool_dir: Path
) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "filesystem":
        backend = ColdFilesystemStore("cold", tmp_path / "cold")
    else:
        settings: S3Settings = request.getfixturevalue("s3_settings")
        backend = S3Store("cold", settings, spool_dir, MAX_SIZE, storage_class="GLACIER")
    async with started(backend):
        yield backend


async def _put(store: Store, name: str, body: bytes) -> str:
    stored = await store.create(name, len(body))
    async with store.open(stored) as writer:
        await writer.write([body])
        await writer.finish()
    return stored.key


async def _read(store: Store, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, start, end)])


async def test_an_archived_object_is_readable_only_once_restored(cold: Store) -> None:
    assert isinstance(cold, Restorer)
    body = os.urandom(70_000)
    key = await _put(cold, "object1", body)
    assert not await cold.restored(key)
    with pytest.raises(ObjectArchived):
        await _read(cold, key)
    await cold.restore(key, 1)
    await cold.restore(key, 1)  # again: nothing changes, nothing fails
    assert await cold.restored(key)
    assert await _read(cold, key) == body
    assert await _read(cold, key, 100, 200) == body[100:200]
    await cold.delete(key)
    with pytest.raises(ObjectNotFound):
        await cold.restore(key, 1)


async def test_restoring_a_missing_object_says_so(cold: Store) -> None:
    assert isinstance(cold, Restorer)
    with pytest.raises(ObjectNotFound):
        await cold.restore("nothing-here", 1)


async def test_a_filesystem_restore_expires_after_its_days(tmp_path: Path) -> None:
    cold = ColdFilesystemStore("cold", tmp_path / "cold")
    async with started(cold):
        key = await _put(cold, "object2", b"restored for a while")
        await cold.restore(key, 2)
        restored = cold.restore_area / key
        assert restored.stat().st_mtime > time.time() + 86400  # expires in two days
        past = time.time() - 1
        os.utime(restored, (past, past))
        assert not await cold.restored(key)
        assert not restored.exists()  # an expired restore is removed when noticed
        with pytest.raises(ObjectArchived):
            await _read(cold, key)


async def test_a_copy_from_a_damaged_source_never_appears(tmp_path: Path) -> None:
    source = FilesystemStore("source", tmp_path / "source")
    target = FilesystemStore("target", tmp_path / "target")
    async with started(source), started(target):
        body = b"the right bytes"
        key = await _put(source, "good", body)
        checksum = hashlib.sha256(body).hexdigest()
        copied = await copy_verified(source, key, target, "copy1", len(body), checksum)
        assert await _read(target, copied) == body
        with pytest.raises(CorruptSource):
            await copy_verified(source, key, target, "copy2", len(body), "0" * 64)
        assert sorted(path.name for path in target.root.iterdir()) == [copied]
