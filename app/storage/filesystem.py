"""A store in a directory: the embedded default.

Layout under ``root`` (keys are upload ids, which are URL-safe tokens, never paths)::

    KEY           a finished object
    KEY.part      the bytes of an unfinished upload; may run past the committed offset
    KEY.offset    the commit record: the committed offset, in decimal, replaced atomically
    .restored/KEY a cold location's restored copy (``ColdFilesystemStore``)

A writer writes at the committed offset into ``KEY.part``; ``commit`` fsyncs the data and then
replaces ``KEY.offset`` through a rename, so the record never names bytes that are not on disk.
Bytes past the record (a PATCH that failed its checksum, a crash before commit) are garbage and
are cut off when the next writer opens. ``finish`` renames ``KEY.part`` to ``KEY``.

Concatenation copies with ``os.copy_file_range``: the kernel moves the bytes, Python never sees
them. Encryption at rest is the disk's job (dm-crypt/LUKS or an encrypted volume).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread

from app.storage.base import Source, StoredUpload
from app.storage.errors import ObjectArchived, ObjectNotFound, StorageError, StorageFull

# A read per thread hop, as big as the reads in flight can afford together: each holds its chunk
# and the socket's unsent copy of it. 512 KiB made one 64 MiB download 467 -> 796 MiB/s, but 400
# downloads at once then peaked at 740 MiB RSS (bench/RESULTS.md). So a few read up to 1 MiB,
# and from 128 at once on each reads 256 KiB.
READ_BUDGET = 32 * 1024 * 1024
READ_CHUNK_MIN = 256 * 1024
READ_CHUNK_MAX = 1024 * 1024
NOWAIT = getattr(os, "RWF_NOWAIT", 0)  # Linux: a read that fails rather than wait for the disk
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


class FilesystemStore:
    def __init__(self, name: str, root: Path, *, fsync: bool = True) -> None:
        self.name = name
        self.root = root
        self.fsync = fsync

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        pass

    async def check(self) -> None:
        if not await to_thread.run_sync(os.access, self.root, os.W_OK | os.X_OK):
            raise StorageError(f"{self.root} is not a writable directory")

    def path(self, key: str) -> Path:
        if not _SAFE_KEY.match(key):
            raise ValueError(f"unsafe store key {key!r}")
        return self.root / key

    async def create(self, upload_id: str, length: int | None) -> StoredUpload:
        path = self.path(upload_id)
        with _mapped():
            await to_thread.run_sync(_touch, path.with_suffix(".part"))
        return StoredUpload(key=upload_id, length=length)

    @asynccontextmanager
    async def open(self, upload: StoredUpload) -> AsyncIterator[FilesystemWriter]:
        writer = FilesystemWriter(self, self.path(upload.key))
        with _mapped():
            await to_thread.run_sync(writer.open)
        try:
            yield writer
        finally:
            await to_thread.run_sync(writer.close)

    async def offset(self, upload: StoredUpload) -> int:
        with _mapped():
            return await to_thread.run_sync(_committed_offset, self.path(upload.key))

    async def abort(self, upload: StoredUpload) -> None:
        path = self.path(upload.key)
        with _mapped():
            for suffix in (".part", ".offset"):
                path.with_suffix(suffix).unlink(missing_ok=True)

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        return _read(self.path(key), key, start, end)

    async def open_file(self, key: str) -> BinaryIO:
        return await _open(self.path(key), key)

    async def delete(self, key: str) -> None:
        with _mapped():
            self.path(key).unlink(missing_ok=True)

    async def concatenate(self, upload: StoredUpload, sources: Sequence[Source]) -> None:
        target = self.path(upload.key)
        paths = [(self.path(source.key), source.size) for source in sources]
        with _mapped():
            await to_thread.run_sync(_concatenate, target, paths, self.fsync)


class ColdFilesystemStore(FilesystemStore):
    """A filesystem location of kind cold: nearline, as an archive storage class is.

    Objects are written as in a hot location but read only from the restore area
    ``root/.restored`` (keys hold no dot, so no key can name it), into which ``restore`` copies
    one for a number of days; the copy's modification time says when it expires. This gives a
    single machine a real cold path, restore and expiry included, without an archive service.
    """

    @property
    def restore_area(self) -> Path:
        return self.root / ".restored"

    async def start(self) -> None:
        await super().start()
        self.restore_area.mkdir(exist_ok=True)

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        return self._read_restored(key, start, end)

    async def _read_restored(
        self, key: str, start: int, end: int | None
    ) -> AsyncGenerator[bytes, None]:
        async for chunk in _read(await self._restored_path(key), key, start, end):
            yield chunk

    async def open_file(self, key: str) -> BinaryIO:
        return await _open(await self._restored_path(key), key)

    async def _restored_path(self, key: str) -> Path:
        if not await self.restored(key):
            raise ObjectArchived(f"{key} is not restored")
        return self.restore_area / self.path(key).name

    async def restore(self, key: str, days: int) -> None:
        if await self.restored(key):
            return
        expires = time.time() + days * 86400
        source = self.path(key)
        target = self.restore_area / source.name
        with _mapped():
            try:
                await to_thread.run_sync(_restore_copy, source, target, expires, self.fsync)
            except FileNotFoundError:
                raise ObjectNotFound(key) from None

    async def restored(self, key: str) -> bool:
        path = self.restore_area / self.path(key).name
        with _mapped():
            try:
                expires = path.stat().st_mtime
            except FileNotFoundError:
                return False
            if expires > time.time():
                return True
            path.unlink(missing_ok=True)
        return False

    async def delete(self, key: str) -> None:
        await super().delete(key)
        with _mapped():
            (self.restore_area / self.path(key).name).unlink(missing_ok=True)


class FilesystemWriter:
    """Writes at the committed offset of ``KEY.part``; see the module docstring."""

    def __init__(self, store: FilesystemStore, path: Path) -> None:
        self._store = store
        self._path = path
        self._fd = -1
        self._offset = 0
        self._staged = 0
        self._finished = False

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def staged(self) -> int:
        return self._staged

    def open(self) -> None:
        if self._path.exists():
            self._finished = True
            self._offset = self._path.stat().st_size
            return
        self._offset = _committed_offset(self._path)
        try:
            self._fd = os.open(self._path.with_suffix(".part"), os.O_RDWR)
        except FileNotFoundError:
            raise ObjectNotFound(self._path.name) from None
        os.ftruncate(self._fd, self._offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def write(self, chunks: Sequence[bytes]) -> None:
        await to_thread.run_sync(self.write_blocking, chunks)

    def write_blocking(self, chunks: Sequence[bytes]) -> None:
        with _mapped():
            self._staged += _write_all(self._fd, chunks, self._offset + self._staged)

    async def commit(self) -> int:
        if self._staged:
            with _mapped():
                await to_thread.run_sync(self._commit_sync)
        return self._offset

    def _commit_sync(self) -> None:
        if self._store.fsync:
            os.fsync(self._fd)
        new_offset = self._offset + self._staged
        _replace_text(self._path.with_suffix(".offset"), str(new_offset), self._store.fsync)
        self._offset = new_offset
        self._staged = 0

    async def finish(self) -> None:
        if self._finished:
            return
        with _mapped():
            await to_thread.run_sync(self._finish_sync)

    def _finish_sync(self) -> None:
        self._offset += self._staged
        self._staged = 0
        os.ftruncate(self._fd, self._offset)
        if self._store.fsync:
            os.fsync(self._fd)
        os.replace(self._path.with_suffix(".part"), self._path)
        self._path.with_suffix(".offset").unlink(missing_ok=True)
        self._finished = True


@contextmanager
def _mapped() -> Iterator[None]:
    """Maps OS errors to storage errors at this store's boundary."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorageFull(str(exc)) from exc
        raise StorageError(str(exc)) from exc


_reading = 0  # reads in flight in this process, which share READ_BUDGET


async def _open(path: Path, key: str) -> BinaryIO:
    with _mapped():
        try:
            return await to_thread.run_sync(path.open, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None


async def _read(path: Path, key: str, start: int, end: int | None) -> AsyncGenerator[bytes, None]:
    global _reading
    file = await _open(path, key)
    fd = file.fileno()
    _reading += 1
    try:
        position = start
        while end is None or position < end:
            chunk_size = max(READ_CHUNK_MIN, min(READ_CHUNK_MAX, READ_BUDGET // _reading))
            size = chunk_size if end is None else min(chunk_size, end - position)
            chunk = _cached(fd, size, position)
            if chunk is None:
                chunk = await to_thread.run_sync(os.pread, fd, size, position)
            if not chunk:
                return
            position += len(chunk)
            yield chunk
    finally:
        _reading -= 1
        file.close()


def _cached(fd: int, size: int, position: int) -> bytes | None:
    """Up to ``size`` bytes at ``position`` if the page cache holds them, read without a thread:
    a thread hop costs more CPU than copying 256 KiB from memory, and a file just uploaded or
    often downloaded is in the cache. None when the disk would have to be waited for (or the
    kernel cannot tell), which the caller then does in a thread, off the event loop."""
    if not NOWAIT:
        return None
    buffer = bytearray(size)
    try:
        read = os.preadv(fd, [buffer], position, NOWAIT)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EOPNOTSUPP):
            return None
        raise
    return bytes(memoryview(buffer)[:read]) if read else None


def _restore_copy(source: Path, target: Path, expires: float, fsync: bool) -> None:
    """Copy ``source`` into the restore area as ``target``, expiring at ``expires``: complete
    before it appears, so a reader never sees half a restore."""
    temporary = target.with_suffix(".tmp")
    with source.open("rb") as reader, temporary.open("wb") as writer:
        _copy(reader.fileno(), writer.fileno(), os.fstat(reader.fileno()).st_size)
        if fsync:
            writer.flush()
            os.fsync(writer.fileno())
    os.utime(temporary, (expires, expires))
    os.replace(temporary, target)


def _touch(path: Path) -> None:
    path.touch(exist_ok=True)


def _committed_offset(path: Path) -> int:
    if path.exists():
        return path.stat().st_size
    try:
        return int(path.with_suffix(".offset").read_text())
    except FileNotFoundError:
        return 0


def _write_all(fd: int, chunks: Sequence[bytes], position: int) -> int:
    start = position
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.pwrite(fd, view, position)
            position += written
            view = view[written:]
    return position - start


def _replace_text(path: Path, text: str, fsync: bool) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("w") as file:
        file.write(text)
        if fsync:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temporary, path)


def _concatenate(target: Path, sources: Sequence[tuple[Path, int]], fsync: bool) -> None:
    partial = target.with_suffix(".part")
    with partial.open("wb") as out:
        try:
            for path, size in sources:
                with path.open("rb") as source:
                    _copy(source.fileno(), out.fileno(), size)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            out.truncate(0)  # a half-made copy only takes room (a full disk stays full)
            raise
    os.replace(partial, target)
    target.with_suffix(".offset").unlink(missing_ok=True)


def _copy(source: int, target: int, size: int) -> None:
    remaining = size
    try:
        while remaining:
            copied = os.copy_file_range(source, target, remaining)
            if copied == 0:
                raise StorageError("source object shorter than recorded")
            remaining -= copied
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        # Duplicated descriptors share the file positions copy_file_range already advanced.
        with os.fdopen(os.dup(source), "rb") as reader, os.fdopen(os.dup(target), "ab") as writer:
            shutil.copyfileobj(reader, writer)
