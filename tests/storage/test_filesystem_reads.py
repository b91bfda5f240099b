"""The filesystem store's reads (app/storage/filesystem.py) share a memory budget: alone, a
download reads big chunks (fewer thread hops, twice the speed); with many at once, each reads
256 KiB, so that their buffers stay bounded. Bytes in the page cache are read without a thread
hop; only those on disk are waited for in a thread."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from app.storage import filesystem
from app.storage.filesystem import READ_CHUNK_MAX, READ_CHUNK_MIN, FilesystemStore
from tests.storage import finished_upload, new_id, read_all

pytestmark = pytest.mark.anyio

MANY = 200
T = TypeVar("T")


async def test_reads_are_big_alone_and_small_when_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sizes asked for, not those returned: a read of bytes partly in the page cache may
    return fewer (found in one CI run: 983,040 then 65,536 bytes where 1 MiB was asked)."""
    store = FilesystemStore("local", tmp_path)
    await store.start()
    data = os.urandom(3 * READ_CHUNK_MAX)
    upload = await finished_upload(store, new_id(), data)
    asked: list[int] = []
    cached = filesystem._cached

    def recorded(fd: int, size: int, position: int) -> bytes | None:
        asked.append(size)
        return cached(fd, size, position)

    monkeypatch.setattr(filesystem, "_cached", recorded)

    assert b"".join([chunk async for chunk in store.read(upload.key)]) == data
    assert asked[0] == READ_CHUNK_MAX

    readers = [store.read(upload.key) for _ in range(MANY)]
    for reader in readers:
        await reader.__anext__()  # every read is in flight now
    asked.clear()
    for reader in readers:
        await reader.__anext__()
    assert set(asked) == {READ_CHUNK_MIN}
    for reader in readers:
        await reader.aclose()

    asked.clear()
    assert b"".join([chunk async for chunk in store.read(upload.key)]) == data
    assert asked[0] == READ_CHUNK_MAX  # the budget is back


async def test_cached_bytes_are_read_without_a_thread_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemStore("local", tmp_path)
    await store.start()
    data = os.urandom(3 * READ_CHUNK_MAX + 12345)
    upload = await finished_upload(store, new_id(), data)
    hops: list[object] = []
    run_sync = filesystem.to_thread.run_sync

    async def counted(function: Callable[..., T], *args: object) -> T:
        hops.append(function)
        return await run_sync(function, *args)

    monkeypatch.setattr(filesystem.to_thread, "run_sync", counted)

    _evict(store.path(upload.key))
    assert await read_all(store, upload.key) == data
    assert os.pread in hops  # the disk was waited for in a thread

    hops.clear()
    assert await read_all(store, upload.key, 5, len(data) - 7) == data[5:-7]
    assert os.pread not in hops  # every byte came from the page cache


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
