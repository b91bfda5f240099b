"""The filesystem store's reads share a memory budget (app/storage/filesystem.py): alone, a
download reads big chunks (fewer thread hops, twice the speed); with many at once, each reads
256 KiB, so that their buffers stay bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.storage.filesystem import READ_CHUNK_MAX, READ_CHUNK_MIN, FilesystemStore
from tests.storage import finished_upload, new_id

pytestmark = pytest.mark.anyio

MANY = 200


async def test_reads_are_big_alone_and_small_when_many(tmp_path: Path) -> None:
    store = FilesystemStore("local", tmp_path)
    await store.start()
    data = os.urandom(3 * READ_CHUNK_MAX)
    upload = await finished_upload(store, new_id(), data)
    alone = [len(chunk) async for chunk in store.read(upload.key)]
    assert alone == [READ_CHUNK_MAX] * 3

    readers = [store.read(upload.key) for _ in range(MANY)]
    for reader in readers:
        await reader.__anext__()  # every read is in flight now
    assert {len(await reader.__anext__()) for reader in readers} == {READ_CHUNK_MIN}
    for reader in readers:
        await reader.aclose()

    assert [len(chunk) async for chunk in store.read(upload.key)] == alone  # the budget is back
