"""The store contract of app/storage/base.py, run against every store (memory, filesystem, S3)."""

from __future__ import annotations

import hashlib

import pytest

from app.storage.base import Concatenator, Source, Store
from app.storage.errors import ObjectNotFound
from tests.storage import (
    PART,
    finished_upload,
    new_id,
    payload,
    read_all,
    sha256_of,
    write_all,
)

pytestmark = pytest.mark.anyio


async def test_a_new_upload_has_nothing_committed(store: Store) -> None:
    upload = await store.create(new_id(), 10)
    assert upload.length == 10
    assert await store.offset(upload) == 0
    async with store.open(upload) as writer:
        assert (writer.offset, writer.staged, writer.finished) == (0, 0, False)


async def test_written_bytes_are_staged_until_commit(store: Store) -> None:
    upload = await store.create(new_id(), None)
    async with store.open(upload) as writer:
        await writer.write([b"abc", b"defg"])
        assert (writer.offset, writer.staged) == (0, 7)
        assert await store.offset(upload) == 0
        assert await writer.commit() == 7
        assert (writer.offset, writer.staged) == (7, 0)
    assert await store.offset(upload) == 7


async def test_reopening_sees_the_committed_offset_and_continues(store: Store) -> None:
    first, second = payload(PART + 11, seed=1), payload(PART // 2 + 5, seed=2)
    upload = await store.create(new_id(), len(first) + len(second))
    async with store.open(upload) as writer:
        await write_all(writer, first)
        await writer.commit()
    async with store.open(upload) as writer:
        assert (writer.offset, writer.staged, writer.finished) == (len(first), 0, False)
        await write_all(writer, second)
        assert await writer.commit() == len(first) + len(second)
        await writer.finish()
    assert await read_all(store, upload.key) == first + second


async def test_bytes_not_committed_are_gone_after_reopening(store: Store) -> None:
    committed, lost, later = payload(1000, seed=1), payload(PART + 3, seed=2), payload(77, seed=3)
    upload = await store.create(new_id(), None)
    async with store.open(upload) as writer:
        await writer.write([committed])
        await writer.commit()
        await write_all(writer, lost)  # then the process "crashes": no commit
    assert await store.offset(upload) == len(committed)
    async with store.open(upload) as writer:
        assert (writer.offset, writer.staged) == (len(committed), 0)
        await writer.write([later])
        await writer.finish()
    assert await read_all(store, upload.key) == committed + later


async def test_commit_after_commit(store: Store) -> None:
    upload = await store.create(new_id(), None)
    async with store.open(upload) as writer:
        assert await writer.commit() == 0
        await writer.write([b"x" * 10])
        assert await writer.commit() == 10
        assert await writer.commit() == 10
        await writer.write([b"y" * 5])
        assert await writer.commit() == 15
        await writer.finish()
    assert await read_all(store, upload.key) == b"x" * 10 + b"y" * 5


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 3 * PART + 17])
async def test_finish_keeps_exactly_the_bytes_written(store: Store, size: int) -> None:
    data = payload(size, seed=size)
    upload = await store.create(new_id(), size)
    async with store.open(upload) as writer:
        await write_all(writer, data[: size // 2], chunk=999_999)
        await writer.commit()
        await write_all(writer, data[size // 2 :], chunk=1_234_567)
        await writer.finish()
        assert (writer.finished, writer.offset, writer.staged) == (True, size, 0)
    assert await sha256_of(store, upload.key) == hashlib.sha256(data).hexdigest()
    assert await store.offset(upload) == size


async def test_read_ranges(store: Store) -> None:
    data = payload(PART + 1000, seed=4)
    upload = await finished_upload(store, new_id(), data)
    for start, end in [
        (0, 10),
        (PART - 5, PART + 5),
        (100, None),
        (0, None),
        (len(data) - 1, None),
    ]:
        assert await read_all(store, upload.key, start, end) == data[start:end]
    assert await read_all(store, upload.key, 5, 5) == b""


async def test_read_yields_bounded_chunks(store: Store) -> None:
    upload = await finished_upload(store, new_id(), payload(3 * 1024 * 1024, seed=5))
    sizes = [len(chunk) async for chunk in store.read(upload.key)]
    assert sum(sizes) == 3 * 1024 * 1024
    assert max(sizes) <= 1024 * 1024


async def test_finish_is_idempotent(store: Store) -> None:
    data = payload(PART + 9, seed=6)
    upload = await store.create(new_id(), len(data))
    async with store.open(upload) as writer:
        await write_all(writer, data)
        await writer.finish()
        await writer.finish()
    async with store.open(upload) as writer:
        assert (writer.finished, writer.offset, writer.staged) == (True, len(data), 0)
        await writer.finish()
    assert await store.offset(upload) == len(data)
    assert await read_all(store, upload.key) == data


async def test_abort_frees_the_upload_and_may_be_repeated(store: Store) -> None:
    upload = await store.create(new_id(), None)
    async with store.open(upload) as writer:
        await write_all(writer, payload(PART + 1, seed=7))
        await writer.commit()
    await store.abort(upload)
    await store.abort(upload)
    assert await store.offset(upload) == 0
    with pytest.raises(ObjectNotFound):
        await read_all(store, upload.key)


async def test_delete_removes_a_finished_object_and_may_be_repeated(store: Store) -> None:
    upload = await finished_upload(store, new_id(), b"to be deleted")
    await store.delete(upload.key)
    await store.delete(upload.key)
    with pytest.raises(ObjectNotFound):
        await read_all(store, upload.key)


async def test_reading_a_missing_object_raises_object_not_found(store: Store) -> None:
    with pytest.raises(ObjectNotFound):
        await read_all(store, "no-such-object")


@pytest.mark.parametrize(
    "sizes",
    [
        [3, PART + 3, 10, 0, 2 * PART + 1, 7],  # tiny pieces between big ones
        [1, 2, 3],  # only tiny pieces
        [PART, PART + 1],  # only pieces big enough to copy
        [],  # nothing: an empty object
    ],
    ids=["mixed", "tiny", "big", "empty"],
)
async def test_concatenate_joins_the_sources_in_order(store: Store, sizes: list[int]) -> None:
    assert isinstance(store, Concatenator)
    datas = [payload(size, seed=index) for index, size in enumerate(sizes)]
    sources = [
        Source((await finished_upload(store, new_id(), data)).key, len(data)) for data in datas
    ]
    joined = b"".join(datas)
    target = await store.create(new_id(), len(joined))
    await store.concatenate(target, sources)
    assert await sha256_of(store, target.key) == hashlib.sha256(joined).hexdigest()
    async with store.open(target) as writer:
        assert (writer.finished, writer.offset) == (True, len(joined))
    for source, data in zip(sources, datas, strict=True):
        assert await read_all(store, source.key) == data  # sources stay as they were
