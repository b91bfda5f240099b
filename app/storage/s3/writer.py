"""The S3 writer: request bytes → spool files on disk → multipart parts; the tail commits them.

Each writer owns a directory under the spool dir, removed when the writer closes, whatever
happened. Its current spool file holds the upload's bytes from ``start`` on, ``start`` being a
multiple of the part size P. When the file reaches P bytes it becomes part ``start / P + 1``,
uploaded in the background (at most ``parts_in_flight`` at once: ``write`` waits for a free
slot), and a new spool file begins at ``start + P``. So every part but the last is exactly P
bytes, and no part is ever held in memory: S3 reads it from the file.

``commit`` waits for the parts in flight, then PUTs the current spool file as the tail object
with its ``start``: that single PUT is the commit (see store.py for the layout). Parts above the
old tail's start were garbage until then; a writer that stops before committing leaves them to
be overwritten by the next one, which starts again from the tail.

The writer does no S3 call itself: it asks a ``Bucket`` (the store) for the few it needs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio
from anyio.abc import TaskGroup

from app.storage.base import StoredUpload
from app.storage.errors import StorageError
from app.storage.s3.client import map_errors


class Bucket(Protocol):
    """The S3 operations a writer needs; ``S3Store`` provides them."""

    async def load_tail(self, upload: StoredUpload, path: Path) -> int | None:
        """Copy the tail's bytes into a new file ``path``; return its start, None if no tail."""

    async def finished_size(self, upload: StoredUpload) -> int | None:
        """Size of the finished object, None while there is none."""

    async def settled(self, upload: StoredUpload, total: int) -> bool:
        """True (and the tail dropped) if an earlier finish already made the whole object."""

    async def upload_part(self, upload: StoredUpload, number: int, path: Path) -> None:
        """Upload the file ``path`` as part ``number``, replacing any part of that number."""

    async def put_tail(self, upload: StoredUpload, start: int, path: Path) -> None:
        """Replace the tail with the file ``path``, starting at ``start``: the commit."""

    async def complete(self, upload: StoredUpload, sizes: Sequence[int]) -> None:
        """Join parts 1..len(sizes), of these sizes, into the finished object; drop the tail."""


@asynccontextmanager
async def spool_directory(spool_dir: Path) -> AsyncIterator[Path]:
    """A new directory under ``spool_dir``, removed with its files on exit, even if cancelled."""
    async with map_errors():
        directory = Path(await anyio.to_thread.run_sync(partial(tempfile.mkdtemp, dir=spool_dir)))
    try:
        yield directory
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(partial(shutil.rmtree, directory, ignore_errors=True))


@asynccontextmanager
async def open_writer(
    bucket: Bucket, upload: StoredUpload, spool_dir: Path, parts_in_flight: int
) -> AsyncIterator[S3Writer]:
    """The writer of ``upload``, restored from its tail; background parts end with the block."""
    part_size = int(upload.state["part_size"])
    async with spool_directory(spool_dir) as directory:
        path = directory / "tail"
        start: int | None = None
        finished_size = await bucket.finished_size(upload)
        if finished_size is not None:
            # The object is the whole upload, whatever a tail left by a finish cut short says:
            # drop that tail, and give the writer an empty spool at the end.
            await bucket.settled(upload, finished_size)
            first = finished_size
        else:
            start = await bucket.load_tail(upload, path)
            first = start or 0
        async with map_errors():
            spool = await anyio.to_thread.run_sync(_Spool.open, path, first)
        failure: Exception | None = None
        async with anyio.create_task_group() as tasks:
            finished = finished_size is not None
            writer = S3Writer(
                bucket, upload, directory, spool, tasks, parts_in_flight, finished=finished
            )
            try:
                if start is not None and (start % part_size or spool.size >= part_size):
                    raise StorageError(
                        f"corrupt tail of {upload.key}: {spool.size} bytes at {start}"
                    )
                yield writer
            except Exception as exc:
                failure = exc  # raised below: the task group would wrap it in an ExceptionGroup
            finally:
                tasks.cancel_scope.cancel()
                writer.close()
        if failure is not None:
            raise failure


@dataclass
class _Spool:
    """The file receiving the upload's bytes from ``start`` on."""

    path: Path
    file: BinaryIO
    start: int
    size: int

    @classmethod
    def open(cls, path: Path, start: int) -> _Spool:
        """Open ``path`` for appending, creating it if needed (blocking: run in a thread)."""
        file = path.open("ab")
        return cls(path, file, start, os.fstat(file.fileno()).st_size)


class S3Writer:
    """Appends to one upload. See the module docstring for how bytes travel."""

    def __init__(
        self,
        bucket: Bucket,
        upload: StoredUpload,
        directory: Path,
        spool: _Spool,
        tasks: TaskGroup,
        parts_in_flight: int,
        *,
        finished: bool,
    ) -> None:
        self._bucket = bucket
        self._upload = upload
        self._part_size = int(upload.state["part_size"])
        self._directory = directory
        self._spool = spool
        self._tasks = tasks
        self._slots = anyio.Semaphore(parts_in_flight)
        self._pending: list[anyio.Event] = []
        self._offset = spool.start + spool.size
        self._finished = finished
        self._failure: StorageError | None = None  # the first part upload that failed
        self._interrupted = False  # a write stopped midway: the staged bytes may have a hole

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def staged(self) -> int:
        return self._spool.start + self._spool.size - self._offset

    def close(self) -> None:
        """Close the current spool file (open_writer removes the files)."""
        self._spool.file.close()

    async def write(self, chunks: Sequence[bytes]) -> None:
        if self._finished:
            raise StorageError(f"upload {self._upload.key} is already finished")
        self._raise_if_failed()
        self._interrupted = True
        async with map_errors():
            full = await anyio.to_thread.run_sync(self._append, chunks)
        for spool in full:
            await self._ship(spool)
        self._interrupted = False

    async def commit(self) -> int:
        if self._finished:
            return self._offset
        await self._settle_parts()
        if self.staged:
            await self._bucket.put_tail(self._upload, self._spool.start, self._spool.path)
            self._offset = self._spool.start + self._spool.size
        return self._offset

    async def finish(self) -> None:
        if self._finished:
            return
        await self._settle_parts()
        spool = self._spool
        total = spool.start + spool.size
        if not await self._bucket.settled(self._upload, total):
            count = spool.start // self._part_size
            if spool.size:
                count += 1
                await self._bucket.upload_part(self._upload, count, spool.path)
            sizes = [
                min(self._part_size, total - index * self._part_size) for index in range(count)
            ]
            await self._bucket.complete(self._upload, sizes)
        self._offset = total
        self._finished = True

    def _append(self, chunks: Sequence[bytes]) -> list[_Spool]:
        """Write ``chunks`` to the spool, cutting at part boundaries; return the files filled.

        Runs in a worker thread: blocking file I/O stays off the event loop.
        """
        full: list[_Spool] = []
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                taken = view[: self._part_size - self._spool.size]
                self._spool.file.write(taken)
                self._spool.size += len(taken)
                view = view[len(taken) :]
                if self._spool.size == self._part_size:
                    self._spool.file.close()
                    full.append(self._spool)
                    start = self._spool.start + self._part_size
                    path = self._directory / f"part-{start // self._part_size + 1}"
                    self._spool = _Spool.open(path, start)
        self._spool.file.flush()
        return full

    async def _ship(self, spool: _Spool) -> None:
        """Start uploading a full spool file once a slot is free."""
        await self._slots.acquire()
        done = anyio.Event()
        self._pending = [event for event in self._pending if not event.is_set()]
        self._pending.append(done)
        self._tasks.start_soon(self._upload_part, spool, done)

    async def _upload_part(self, spool: _Spool, done: anyio.Event) -> None:
        try:
            number = spool.start // self._part_size + 1
            await self._bucket.upload_part(self._upload, number, spool.path)
            async with map_errors():
                await anyio.to_thread.run_sync(spool.path.unlink)
        except StorageError as exc:
            self._failure = self._failure or exc
        finally:
            self._slots.release()
            done.set()

    async def _settle_parts(self) -> None:
        """Wait for every part in flight; raise if any of them (or a write) failed."""
        self._raise_if_failed()
        for done in self._pending:
            await done.wait()
        self._pending.clear()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            failure = self._failure
            raise type(failure)(f"a part upload failed: {failure}") from failure
        if self._interrupted:
            raise StorageError("an earlier write did not complete; reopen the upload")
