"""What only the S3 store promises: part sizes, the tail as commit record, cleanup, errors, memory.

The bucket is inspected with a plain boto3 client, beside the store.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from app.settings import S3Settings
from app.storage.base import Source, StoredUpload
from app.storage.errors import ObjectNotFound, StorageError, StorageFull, StorageUnavailable
from app.storage.s3 import S3Store
from app.storage.s3.client import map_errors
from app.storage.s3.store import part_size_for
from tests.services import MotoServer, free_port
from tests.storage import PART, MiB, finished_upload, new_id, payload, read_all, write_all

pytestmark = pytest.mark.anyio

GiB = 1024 * MiB


class _Bucket:
    """A boto3 client on the test bucket, to look at what the store left there."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def part_sizes(self, upload: StoredUpload) -> dict[int, int]:
        parts = self.client.list_parts(
            Bucket=self.name, Key=upload.key, UploadId=upload.state["multipart_id"]
        )
        return {part["PartNumber"]: part["Size"] for part in parts.get("Parts", [])}

    def multipart_uploads(self) -> list[str]:
        listing = self.client.list_multipart_uploads(Bucket=self.name)
        return [item["Key"] for item in listing.get("Uploads", [])]

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.name, Key=key)
        except ClientError:
            return None
        return head


@pytest.fixture
def bucket(s3_server: MotoServer, s3_settings: S3Settings) -> _Bucket:
    return _Bucket(s3_server.client(), s3_settings.bucket)


class _Recorder:
    """Stands in for the store's client and logs (operation, key) of each call, in order."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, str | None]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._client.meta.method_to_api_mapping:  # not an S3 operation
            return attribute

        async def call(**params: Any) -> Any:
            self.calls.append((name, params.get("Key")))
            return await attribute(**params)

        return call


async def test_every_part_but_the_last_is_exactly_the_part_size(
    s3_store: S3Store, bucket: _Bucket
) -> None:
    data = payload(3 * PART + PART // 2, seed=1)
    upload = await s3_store.create(new_id(), len(data))
    async with s3_store.open(upload) as writer:
        for start in range(0, len(data), 1_300_001):  # commits at odd offsets
            await write_all(writer, data[start : start + 1_300_001], chunk=333_333)
            await writer.commit()
        assert bucket.part_sizes(upload) == {1: PART, 2: PART, 3: PART}
        tail = bucket.head(upload.key + ".tail")
        assert tail is not None
        assert tail["ContentLength"] == PART // 2
        assert tail["Metadata"] == {"tusgate-start": str(3 * PART)}
        await writer.finish()
    assert await read_all(s3_store, upload.key) == data


async def test_parts_sent_but_not_committed_are_garbage_that_the_next_writer_replaces(
    s3_store: S3Store, bucket: _Bucket, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, garbage, second = payload(PART + 10, 1), payload(3 * PART + 100, 2), payload(50, 3)
    upload = await s3_store.create(new_id(), None)
    async with s3_store.open(upload) as writer:
        await write_all(writer, first)
        await writer.commit()

    async def crash(*args: object) -> None:
        raise StorageUnavailable("the process died before writing the commit record")

    async def write_and_commit() -> None:
        async with s3_store.open(upload) as writer:
            await write_all(writer, garbage)
            await writer.commit()

    monkeypatch.setattr(s3_store, "put_tail", crash)
    with pytest.raises(StorageUnavailable):
        await write_and_commit()
    monkeypatch.undo()

    assert bucket.part_sizes(upload) == {1: PART, 2: PART, 3: PART, 4: PART}
    assert await s3_store.offset(upload) == PART + 10
    assert _files_in(spool_dir) == []
    async with s3_store.open(upload) as writer:
        assert writer.offset == PART + 10
        await writer.write([second])
        await writer.finish()
    assert await read_all(s3_store, upload.key) == first + second


async def test_a_failed_part_upload_fails_the_next_call_and_commits_nothing(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = await s3_store.create(new_id(), None)

    async def refuse(*args: object) -> None:
        raise StorageUnavailable("S3 went away")

    monkeypatch.setattr(s3_store, "upload_part", refuse)
    async with s3_store.open(upload) as writer:
        await write_all(writer, payload(PART + 1))
        with pytest.raises(StorageUnavailable, match="a part upload failed"):
            await writer.commit()
        with pytest.raises(StorageUnavailable):
            await writer.write([b"more"])
    assert await s3_store.offset(upload) == 0


async def test_parts_upload_in_the_background_but_no_more_than_parts_in_flight(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload_part = s3_store.upload_part
    running, most = 0, 0

    async def counted(upload: StoredUpload, number: int, path: Path) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await upload_part(upload, number, path)
        finally:
            running -= 1

    monkeypatch.setattr(s3_store, "upload_part", counted)
    upload = await s3_store.create(new_id(), None)
    async with s3_store.open(upload) as writer:
        await writer.write([payload(6 * PART, seed=8)])  # one batch filling six parts
        assert await writer.commit() == 6 * PART
    assert most == 2  # S3Settings.parts_in_flight


async def test_leaving_a_writer_cancels_its_parts_and_removes_its_spool(
    s3_store: S3Store, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = []

    async def hang(upload: StoredUpload, number: int, path: Path) -> None:
        started.append(number)
        await anyio.Event().wait()  # never set: only cancellation ends it

    upload = await s3_store.create(new_id(), None)
    async with s3_store.open(upload) as writer:
        await writer.write([b"k" * 10])
        await writer.commit()
        monkeypatch.setattr(s3_store, "upload_part", hang)
        await write_all(writer, payload(2 * PART, seed=9))
    assert started == [1, 2]
    assert _files_in(spool_dir) == []
    assert await s3_store.offset(upload) == 10


async def test_commit_replaces_the_tail_and_never_deletes_it_first(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder(s3_store._client)
    monkeypatch.setattr(s3_store, "_client", recorder)
    upload = await s3_store.create(new_id(), None)
    tail = upload.key + ".tail"
    async with s3_store.open(upload) as writer:
        await writer.write([b"a" * 1000])
        assert await s3_store.offset(upload) == 0
        await writer.commit()
        assert await s3_store.offset(upload) == 1000
        await write_all(writer, payload(PART, seed=4))
        assert await s3_store.offset(upload) == 1000
        await writer.commit()
        assert await s3_store.offset(upload) == PART + 1000
        committing = list(recorder.calls)
        await writer.finish()
    assert await s3_store.offset(upload) == PART + 1000

    assert ("delete_object", tail) not in committing
    assert [call for call in committing if call[0] in ("put_object", "upload_part")] == [
        ("put_object", tail),
        ("upload_part", upload.key),
        ("put_object", tail),
    ]
    finishing = recorder.calls[len(committing) :]
    assert finishing.index(("complete_multipart_upload", upload.key)) < finishing.index(
        ("delete_object", tail)
    )


async def test_finish_leaves_no_multipart_upload_and_no_tail(
    s3_store: S3Store, bucket: _Bucket, spool_dir: Path
) -> None:
    upload = await finished_upload(s3_store, new_id(), payload(PART + 5))
    assert bucket.multipart_uploads() == []
    assert bucket.head(upload.key + ".tail") is None
    head = bucket.head(upload.key)
    assert head is not None
    assert head["ContentLength"] == PART + 5
    assert _files_in(spool_dir) == []


async def test_an_empty_upload_becomes_an_empty_object(s3_store: S3Store, bucket: _Bucket) -> None:
    upload = await finished_upload(s3_store, new_id(), b"")
    assert bucket.multipart_uploads() == []
    head = bucket.head(upload.key)
    assert head is not None
    assert head["ContentLength"] == 0


async def test_abort_leaves_no_multipart_upload_and_no_tail(
    s3_store: S3Store, bucket: _Bucket
) -> None:
    upload = await s3_store.create(new_id(), None)
    async with s3_store.open(upload) as writer:
        await write_all(writer, payload(PART + 5))
        await writer.commit()
    assert bucket.multipart_uploads() == [upload.key]
    await s3_store.abort(upload)
    assert bucket.multipart_uploads() == []
    assert bucket.head(upload.key + ".tail") is None


@pytest.mark.parametrize("committed", [PART + PART // 2, PART // 2], ids=["all", "fewer"])
async def test_finish_after_a_crash_between_complete_and_tail_removal(
    s3_store: S3Store, bucket: _Bucket, committed: int
) -> None:
    """The finished object wins over a tail that a finish cut short left behind. "fewer" was
    found by tests/e2e/test_crash_points.py: a PATCH bringing the last bytes finishes without
    committing them to the tail, so the tail named fewer bytes than the object; the offset was
    the tail's, and every PATCH then failed (503) uploading parts into a multipart upload that
    no longer existed."""
    data = payload(PART + PART // 2, seed=5)
    upload = await s3_store.create(new_id(), len(data))
    async with s3_store.open(upload) as writer:
        await write_all(writer, data[:committed])
        await writer.commit()
    # Finish by hand, leaving the tail as a writer that died just before deleting it would.
    multipart = {"Bucket": bucket.name, "Key": upload.key, "UploadId": upload.state["multipart_id"]}
    bucket.client.upload_part(**multipart, PartNumber=1, Body=data[:PART])
    bucket.client.upload_part(**multipart, PartNumber=2, Body=data[PART:])
    parts = bucket.client.list_parts(**multipart)["Parts"]
    bucket.client.complete_multipart_upload(
        **multipart,
        MultipartUpload={
            "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]
        },
    )
    assert bucket.head(upload.key + ".tail") is not None
    assert await s3_store.offset(upload) == len(data)
    async with s3_store.open(upload) as writer:
        assert (writer.finished, writer.offset) == (True, len(data))
        await writer.finish()
    assert bucket.head(upload.key + ".tail") is None
    assert await read_all(s3_store, upload.key) == data


async def test_unfinished_lists_the_multipart_uploads_by_upload_id(
    s3_store: S3Store, bucket: _Bucket
) -> None:
    """What the sweeper needs to find multipart uploads that no upload row holds."""
    kept, lost = new_id(), new_id()
    for upload_id in (kept, lost):
        await s3_store.create(upload_id, 10)
    await finished_upload(s3_store, new_id(), b"done")
    listed = {u.upload_id: u async for u in s3_store.unfinished()}
    assert set(listed) == {kept, lost}
    assert listed[lost].upload.key == "uploads/" + lost
    await s3_store.abort(listed[lost].upload)
    assert bucket.multipart_uploads() == ["uploads/" + kept]


def test_part_size_is_raised_to_whole_mib_beyond_10000_parts() -> None:
    assert part_size_for(10_000 * PART, PART) == PART
    assert part_size_for(10_000 * PART + 1, PART) == 6 * MiB
    assert part_size_for(100 * GiB, PART) == 11 * MiB
    with pytest.raises(ValueError, match="10000 parts"):
        part_size_for(10_000 * 5 * GiB + 1, PART)


async def test_create_raises_the_part_size_for_a_huge_length(s3_store: S3Store) -> None:
    huge = await s3_store.create(new_id(), 100 * GiB)
    deferred = await s3_store.create(new_id(), None)  # sized for max_size, 1 GiB here
    assert huge.state["part_size"] == 11 * MiB
    assert deferred.state["part_size"] == PART


async def test_concatenate_copies_big_sources_server_side(
    s3_store: S3Store, bucket: _Bucket
) -> None:
    datas = [payload(PART + 3, 1), payload(1, 2), payload(2 * PART, 3)]
    sources = [
        Source((await finished_upload(s3_store, new_id(), data)).key, len(data)) for data in datas
    ]
    target = await s3_store.create(new_id(), sum(len(data) for data in datas))
    await s3_store.concatenate(target, sources)
    await s3_store.concatenate(target, sources)  # a retry after success changes nothing
    head = bucket.head(target.key)
    assert head is not None
    assert head["ETag"].strip('"').endswith("-3")  # copy, 1 byte + assembled, copy
    assert await read_all(s3_store, target.key) == b"".join(datas)


async def test_an_unreachable_endpoint_is_storage_unavailable(
    s3_settings: S3Settings, spool_dir: Path
) -> None:
    settings = S3Settings(
        bucket=s3_settings.bucket,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key="test",
        secret_key="test",
    )
    store = S3Store("down", settings, spool_dir, GiB)
    await store.start()
    try:
        with pytest.raises(StorageUnavailable) as raised:
            await store.create(new_id(), 10)
        assert isinstance(raised.value.__cause__, EndpointConnectionError)
    finally:
        await store.close()


async def test_a_missing_key_is_object_not_found(s3_store: S3Store) -> None:
    with pytest.raises(ObjectNotFound) as raised:
        await read_all(s3_store, "uploads/missing", 0, 10)
    assert isinstance(raised.value.__cause__, ClientError)


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "Operation")


@pytest.mark.parametrize(
    ("make_error", "expected"),
    [
        (lambda: _client_error("NoSuchKey"), ObjectNotFound),
        (lambda: _client_error("NoSuchUpload"), ObjectNotFound),
        (lambda: _client_error("404"), ObjectNotFound),
        (lambda: _client_error("InvalidAccessKeyId"), StorageUnavailable),
        (lambda: _client_error("EntityTooSmall"), StorageError),
        (lambda: aiohttp.ServerDisconnectedError(), StorageUnavailable),
        (lambda: TimeoutError("slow"), StorageUnavailable),
        (lambda: OSError(errno.ENOSPC, "No space left on device"), StorageFull),
        (lambda: OSError(errno.EIO, "I/O error"), StorageError),
    ],
)
async def test_foreign_errors_are_mapped(
    make_error: Callable[[], Exception], expected: type[StorageError]
) -> None:
    error = make_error()
    with pytest.raises(StorageError) as raised:
        async with map_errors():
            raise error
    assert type(raised.value) is expected
    assert raised.value.__cause__ is error


async def test_our_own_bugs_are_not_disguised_as_storage_errors() -> None:
    with pytest.raises(TypeError):
        async with map_errors():
            raise TypeError("a bug")


def _files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def _reset_peak_memory() -> None:
    """Make the kernel restart the process's peak RSS (VmHWM) from its current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


def _memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


async def test_memory_stays_bounded_while_200_mib_stream_through(s3_store: S3Store) -> None:
    chunk = payload(PART, seed=6)
    upload = await s3_store.create(new_id(), None)
    async with s3_store.open(upload) as writer:
        for _ in range(4):  # warm up: worker threads, connections, allocator pools
            await writer.write([chunk])
        await writer.commit()
        _reset_peak_memory()
        baseline = _memory_kib("VmRSS")
        for _ in range(40):
            await writer.write([chunk])
        assert await writer.commit() == 44 * PART
        peak = _memory_kib("VmHWM")
    await s3_store.abort(upload)
    # Holding each part in memory while it is sent would already cost ~20 MiB here.
    assert (peak - baseline) * 1024 < 8 * MiB


async def test_objects_and_tails_are_written_with_server_side_encryption(
    s3_settings: S3Settings, spool_dir: Path, bucket: _Bucket
) -> None:
    settings = replace(s3_settings, sse="AES256")
    store = S3Store("encrypted", settings, spool_dir, GiB)
    await store.start()
    try:
        upload = await store.create(new_id(), None)
        async with store.open(upload) as writer:
            await writer.write([b"a" * 1000])
            await writer.commit()
            tail = bucket.head(upload.key + ".tail")
            assert tail is not None
            assert tail["ServerSideEncryption"] == "AES256"
            await write_all(writer, payload(PART, seed=9))
            await writer.finish()
        head = bucket.head(upload.key)
        assert head is not None
        assert head["ServerSideEncryption"] == "AES256"
        assert await read_all(store, upload.key) == b"a" * 1000 + payload(PART, seed=9)
    finally:
        await store.close()
