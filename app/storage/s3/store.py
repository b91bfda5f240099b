"""S3Store: uploads as S3 multipart uploads, committed by a small "tail" object.

Object layout in the bucket, with K = prefix + upload id and P the upload's part size
(``StoredUpload.state["part_size"]``, fixed at creation)::

    K              the finished object.
    K (multipart)  the unfinished upload: one multipart upload on K (``state["multipart_id"]``).
                   Part n holds bytes [(n-1)P, nP); every part but the last is exactly P bytes.
    K.tail         the commit record: the committed bytes that do not fill a part yet, with the
                   user metadata ``x-amz-meta-tusgate-start`` = where they start (a multiple of
                   P). The committed offset is that start plus the tail's size; parts 1..start/P
                   are committed.

Parts numbered above start/P are garbage until a later tail names them, and the next writer
overwrites them (an UploadPart replaces the part of the same number). A commit is one PutObject
of the tail, which replaces the old record atomically: whenever a crash happens, the store is
never behind what was committed, and never holds an undersized middle part. Once K exists its
size is the offset, whatever tail a finish cut short left behind (finishing deletes the tail
last); before, the tail says it, and without a tail the offset is 0.

Objects carry the tag ``tusgate-expiry``: ``auto`` (finished objects and unfinished uploads),
``tail`` (commit records) or ``held`` (legal hold); the bucket's lifecycle rules, written by
``provision`` (lifecycle.py), expire by tag as a second line of defence behind the sweeper.

Permissions the store needs on ``bucket/prefix*``: s3:PutObject (PutObject,
CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload), s3:GetObject
(GetObject, HeadObject, the source of UploadPartCopy), s3:DeleteObject, s3:AbortMultipartUpload,
s3:ListMultipartUploadParts, s3:PutObjectTagging (legal holds); s3:ListBucket on the bucket,
without which S3 answers 403 instead of 404 for a missing tail, and s3:ListBucketMultipartUploads
(the sweeper's search for unfinished uploads that no row holds); and for ``python -m app storage
init`` s3:CreateBucket and s3:PutLifecycleConfiguration.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

import anyio

from app.settings import S3Settings
from app.storage.base import ExpiryPolicy, Source, StoredUpload, Unfinished
from app.storage.errors import ObjectNotFound, StorageError
from app.storage.s3.client import S3Client, create_client, map_errors
from app.storage.s3.concat import MAX_PARTS, Piece, plan_parts
from app.storage.s3.lifecycle import EXPIRES, HELD, TAIL, provision
from app.storage.s3.writer import S3Writer, open_writer, spool_directory

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3's minimum for every part but the last
MAX_PART = 5 * 1024 * MiB  # S3's maximum for any part
CHUNK = 64 * 1024  # bytes per read from a GetObject body
START = "tusgate-start"  # the tail's user metadata: where its bytes start in the upload
# Classes whose objects need a RestoreObject before a GetObject (GLACIER_IR does not).
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


def encryption(settings: S3Settings) -> dict[str, str]:
    """The server-side encryption parameters of every object written (none: the bucket's
    default). Parts and tails are encrypted as their upload or object is."""
    if not settings.sse:
        return {}
    parameters = {"ServerSideEncryption": settings.sse}
    if settings.sse_kms_key_id:
        parameters["SSEKMSKeyId"] = settings.sse_kms_key_id
    return parameters


def part_size_for(size: int, part_size: int) -> int:
    """``part_size``, raised to a whole MiB if ``size`` bytes would need over 10,000 parts."""
    if size <= part_size * MAX_PARTS:
        return part_size
    raised = -(-size // (MAX_PARTS * MiB)) * MiB
    if raised > MAX_PART:
        raise ValueError(f"{size} bytes do not fit in {MAX_PARTS} parts of at most 5 GiB")
    return raised


class S3Store:
    """A store in one S3 bucket (MinIO, AWS, moto); also a ``Concatenator``, a ``Lister`` and,
    for objects written in an archive ``storage_class``, a ``Restorer``.

    ``spool_dir`` holds the bytes on their way to becoming parts (writers' spool files,
    assembled parts of a concatenation): on disk, never in memory. ``max_size`` sizes the parts
    of uploads whose length is deferred.
    """

    def __init__(
        self,
        name: str,
        settings: S3Settings,
        spool_dir: Path,
        max_size: int,
        storage_class: str = "STANDARD",
    ) -> None:
        self.name = name
        self._settings = settings
        self._storage_class = storage_class
        self._bucket = settings.bucket
        self._spool_dir = spool_dir
        self._max_size = max_size
        self._exit = AsyncExitStack()
        self._client: S3Client = None
        self._encryption = encryption(settings)

    async def start(self) -> None:
        async with map_errors():
            await anyio.to_thread.run_sync(
                partial(self._spool_dir.mkdir, parents=True, exist_ok=True)
            )
        self._client = await self._exit.enter_async_context(create_client(self._settings))

    async def close(self) -> None:
        await self._exit.aclose()

    async def check(self) -> None:
        async with map_errors():
            await self._client.head_bucket(Bucket=self._bucket)

    async def create(self, upload_id: str, length: int | None) -> StoredUpload:
        key = self._settings.prefix + upload_id
        size = self._max_size if length is None else length
        part_size = part_size_for(size, self._settings.part_size)
        async with map_errors():
            response = await self._client.create_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                Tagging=EXPIRES,
                StorageClass=self._storage_class,
                **self._encryption,
            )
        state = {"multipart_id": response["UploadId"], "part_size": part_size}
        return StoredUpload(key=key, length=length, state=state)

    def open(self, upload: StoredUpload) -> AbstractAsyncContextManager[S3Writer]:
        return open_writer(self, upload, self._spool_dir, self._settings.parts_in_flight)

    async def offset(self, upload: StoredUpload) -> int:
        """The finished object's size if there is one (a finish cut short may have left a
        tail behind, naming fewer bytes), else what the tail commits, else 0."""
        finished = await self.finished_size(upload)
        if finished is not None:
            return finished
        tail = await self._head(_tail_key(upload))
        return 0 if tail is None else _tail_start(tail) + int(tail["ContentLength"])

    async def abort(self, upload: StoredUpload) -> None:
        await self._abort_multipart(upload)
        await self._delete(_tail_key(upload))

    async def read(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        if end is not None and end <= start:
            return  # S3 would ignore an empty Range and send the whole object
        response = await self._get(key, start, end)
        body = response["Body"]
        async with map_errors(), body:
            async for chunk in body.iter_chunks(CHUNK):
                yield chunk

    async def delete(self, key: str) -> None:
        await self._delete(key)

    async def concatenate(self, upload: StoredUpload, sources: Sequence[Source]) -> None:
        """Join ``sources`` into ``upload``: server-side copies, assembling only small pieces."""
        parts = plan_parts(sources, MIN_PART, MAX_PART)
        if await self.settled(upload, sum(part.size for part in parts)):
            return
        async with spool_directory(self._spool_dir) as directory:
            for number, part in enumerate(parts, 1):
                if part.copy:
                    await self._copy_part(upload, number, part.pieces[0])
                else:
                    await self._assemble_part(upload, number, part.pieces, directory)
        await self.complete(upload, [part.size for part in parts])

    async def unfinished(self) -> AsyncIterator[Unfinished]:
        prefix = self._settings.prefix
        async with map_errors():
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self._bucket, Prefix=prefix
            )
            async for page in pages:
                for item in page.get("Uploads", []):
                    key = str(item["Key"])
                    state = {"multipart_id": item["UploadId"]}
                    yield Unfinished(key[len(prefix) :], StoredUpload(key, None, state))

    async def hold(self, key: str, held: bool) -> None:
        value = HELD if held else EXPIRES
        name, _, tag = value.partition("=")
        async with map_errors():
            await self._client.put_object_tagging(
                Bucket=self._bucket, Key=key, Tagging={"TagSet": [{"Key": name, "Value": tag}]}
            )

    async def restore(self, key: str, days: int) -> None:
        """RestoreObject, unless the object is readable or a restore already began."""
        head = await self._archived_head(key)
        if head is None or "Restore" in head:
            return
        request = {"Days": days, "GlacierJobParameters": {"Tier": self._settings.restore_tier}}
        try:
            async with map_errors():
                await self._client.restore_object(
                    Bucket=self._bucket, Key=key, RestoreRequest=request
                )
        except StorageError:
            head = await self._archived_head(key)
            if head is None or "Restore" not in head:
                raise  # not a race with another restore (RestoreAlreadyInProgress)

    async def restored(self, key: str) -> bool:
        """Per the ``Restore`` header of HeadObject (``ongoing-request="false"`` once done), as
        AWS and MinIO report it."""
        head = await self._archived_head(key)
        return head is None or 'ongoing-request="false"' in head.get("Restore", "")

    async def _archived_head(self, key: str) -> Any:
        """The HeadObject response of an archived object; None when it can be read as is."""
        head = await self._head(key)
        if head is None:
            raise ObjectNotFound(key)
        return head if head.get("StorageClass") in ARCHIVE_CLASSES else None

    async def provision(self, policy: ExpiryPolicy) -> None:
        await provision(self._client, self._bucket, self._settings.prefix, policy)

    # The operations the writer builds on (writer.Bucket).

    async def load_tail(self, upload: StoredUpload, path: Path) -> int | None:
        async with _opened(path, "wb") as file:
            try:
                response = await self._get(_tail_key(upload))
            except ObjectNotFound:
                return None
            await _save(response["Body"], file)
        return _tail_start(response)

    async def finished_size(self, upload: StoredUpload) -> int | None:
        head = await self._head(upload.key)
        return None if head is None else int(head["ContentLength"])

    async def settled(self, upload: StoredUpload, total: int) -> bool:
        if await self.finished_size(upload) != total:
            return False
        await self._delete(_tail_key(upload))
        return True

    async def upload_part(self, upload: StoredUpload, number: int, path: Path) -> None:
        async with _opened(path, "rb") as body, map_errors():
            await self._client.upload_part(
                Bucket=self._bucket,
                Key=upload.key,
                UploadId=_multipart_id(upload),
                PartNumber=number,
                Body=body,
            )

    async def put_tail(self, upload: StoredUpload, start: int, path: Path) -> None:
        async with _opened(path, "rb") as body, map_errors():
            await self._client.put_object(
                Bucket=self._bucket,
                Key=_tail_key(upload),
                Body=body,
                Metadata={START: str(start)},
                Tagging=TAIL,
                **self._encryption,
            )

    async def complete(self, upload: StoredUpload, sizes: Sequence[int]) -> None:
        if sizes:
            etags = await self._part_etags(upload, sizes)
            parts = [{"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, 1)]
            async with map_errors():
                await self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=upload.key,
                    UploadId=_multipart_id(upload),
                    MultipartUpload={"Parts": parts},
                )
        else:
            # A multipart upload cannot make an empty object. Abort first: a crash before the
            # PUT then leaves an upload that a second finish completes, and nothing orphaned.
            await self._abort_multipart(upload)
            async with map_errors():
                await self._client.put_object(
                    Bucket=self._bucket,
                    Key=upload.key,
                    Body=b"",
                    Tagging=EXPIRES,
                    StorageClass=self._storage_class,
                    **self._encryption,
                )
        await self._delete(_tail_key(upload))

    # Helpers.

    async def _part_etags(self, upload: StoredUpload, sizes: Sequence[int]) -> list[str]:
        """ETags of parts 1..len(sizes), after checking that each has the size expected."""
        found: dict[int, tuple[str, int]] = {}
        async with map_errors():
            pages = self._client.get_paginator("list_parts").paginate(
                Bucket=self._bucket, Key=upload.key, UploadId=_multipart_id(upload)
            )
            async for page in pages:
                for part in page.get("Parts", []):
                    found[int(part["PartNumber"])] = (str(part["ETag"]), int(part["Size"]))
        etags = []
        for number, size in enumerate(sizes, 1):
            etag, actual = found.get(number, ("", None))
            if actual != size:
                raise StorageError(f"part {number} of {upload.key}: {actual} bytes, not {size}")
            etags.append(etag)
        return etags

    async def _copy_part(self, upload: StoredUpload, number: int, piece: Piece) -> None:
        async with map_errors():
            await self._client.upload_part_copy(
                Bucket=self._bucket,
                Key=upload.key,
                UploadId=_multipart_id(upload),
                PartNumber=number,
                CopySource={"Bucket": self._bucket, "Key": piece.key},
                CopySourceRange=f"bytes={piece.start}-{piece.end - 1}",
            )

    async def _assemble_part(
        self, upload: StoredUpload, number: int, pieces: Sequence[Piece], directory: Path
    ) -> None:
        """Download ``pieces`` into one spool file and upload it as part ``number``."""
        path = directory / f"part-{number}"
        async with _opened(path, "wb") as file:
            for piece in pieces:
                response = await self._get(piece.key, piece.start, piece.end)
                await _save(response["Body"], file)
        await self.upload_part(upload, number, path)
        async with map_errors():
            await anyio.to_thread.run_sync(path.unlink)

    async def _get(self, key: str, start: int = 0, end: int | None = None) -> Any:
        """A GetObject response whose body streams; a Range only when one is needed (S3
        refuses any Range on an empty object)."""
        byte_range = {} if start == 0 and end is None else {"Range": _range(start, end)}
        async with map_errors():
            return await self._client.get_object(Bucket=self._bucket, Key=key, **byte_range)

    async def _head(self, key: str) -> Any:
        """The HeadObject response, or None when there is no such object."""
        try:
            async with map_errors():
                return await self._client.head_object(Bucket=self._bucket, Key=key)
        except ObjectNotFound:
            return None

    async def _delete(self, key: str) -> None:
        async with map_errors():
            await self._client.delete_object(Bucket=self._bucket, Key=key)

    async def _abort_multipart(self, upload: StoredUpload) -> None:
        try:
            async with map_errors():
                await self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=upload.key, UploadId=_multipart_id(upload)
                )
        except ObjectNotFound:
            pass  # already aborted, or completed


@asynccontextmanager
async def _opened(path: Path, mode: str) -> AsyncIterator[IO[Any]]:
    """``path`` opened in binary ``mode`` off the event loop, closed on exit."""
    async with map_errors():
        file = await anyio.to_thread.run_sync(path.open, mode)
    try:
        yield file
    finally:
        file.close()


async def _save(body: Any, file: IO[Any]) -> None:
    """Stream a GetObject body into ``file``, chunk by chunk, writing off the event loop."""
    async with map_errors(), body:
        async for chunk in body.iter_chunks(CHUNK):
            await anyio.to_thread.run_sync(file.write, chunk)


def _range(start: int, end: int | None) -> str:
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def _tail_key(upload: StoredUpload) -> str:
    return upload.key + ".tail"


def _multipart_id(upload: StoredUpload) -> str:
    return str(upload.state["multipart_id"])


def _tail_start(response: Any) -> int:
    try:
        return int(response["Metadata"][START])
    except (KeyError, ValueError) as exc:
        raise StorageError(f"a tail without a valid {START} metadata") from exc
