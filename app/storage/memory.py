"""A store in RAM: the reference implementation of ``base.py``, for tests and experiments.

It holds whole objects in memory, so it is never used for real uploads.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager

from app.storage.base import Source, StoredUpload
from app.storage.errors import ObjectNotFound

CHUNK = 64 * 1024


class MemoryStore:
    def __init__(self, name: str) -> None:
        self.name = name
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, bytearray] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def check(self) -> None:
        pass

    async def create(self, upload_id: str, length: int | None) -> StoredUpload:
        self.uploads[upload_id] = bytearray()
        return StoredUpload(key=upload_id, length=length)

    @asynccontextmanager
    async def open(self, upload: StoredUpload) -> AsyncIterator[MemoryWriter]:
        yield MemoryWriter(self, upload.key)

    async def offset(self, upload: StoredUpload) -> int:
        if upload.key in self.objects:
            return len(self.objects[upload.key])
        return len(self.uploads.get(upload.key, b""))

    async def abort(self, upload: StoredUpload) -> None:
        self.uploads.pop(upload.key, None)

    async def read(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        if key not in self.objects:
            raise ObjectNotFound(key)
        data = self.objects[key][start:end]
        for position in range(0, len(data), CHUNK):
            yield data[position : position + CHUNK]

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def concatenate(self, upload: StoredUpload, sources: Sequence[Source]) -> None:
        joined = bytearray()
        for source in sources:
            async for chunk in self.read(source.key):
                joined += chunk
        self.objects[upload.key] = bytes(joined)
        self.uploads.pop(upload.key, None)


class MemoryWriter:
    def __init__(self, store: MemoryStore, key: str) -> None:
        self._store = store
        self._key = key
        self._staged = bytearray()

    @property
    def offset(self) -> int:
        if self.finished:
            return len(self._store.objects[self._key])
        return len(self._committed())

    @property
    def finished(self) -> bool:
        return self._key in self._store.objects

    @property
    def staged(self) -> int:
        return len(self._staged)

    def _committed(self) -> bytearray:
        try:
            return self._store.uploads[self._key]
        except KeyError:
            raise ObjectNotFound(self._key) from None

    async def write(self, chunks: Sequence[bytes]) -> None:
        for chunk in chunks:
            self._staged += chunk

    async def commit(self) -> int:
        self._committed().extend(self._staged)
        self._staged.clear()
        return self.offset

    async def finish(self) -> None:
        if self.finished:
            return
        await self.commit()
        self._store.objects[self._key] = bytes(self._store.uploads.pop(self._key))
