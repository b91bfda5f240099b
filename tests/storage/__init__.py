"""Tests of the stores, and the helpers the contract and S3 suites share."""

from __future__ import annotations

import hashlib
import random
import uuid

from app.storage.base import Store, StoredUpload, Writer

MiB = 1024 * 1024
PART = 5 * MiB  # the S3 store's part size in these tests: S3's real minimum


def new_id() -> str:
    """A fresh upload id, safe as a key in every store."""
    return uuid.uuid4().hex


def payload(size: int, seed: int = 0) -> bytes:
    """``size`` reproducible bytes that differ from seed to seed."""
    return random.Random(seed).randbytes(size)


async def write_all(writer: Writer, data: bytes, chunk: int = 1_000_003) -> None:
    """Write ``data`` in batches of two chunks of an odd size, as a PATCH body arrives."""
    for start in range(0, len(data), 2 * chunk):
        middle = min(start + chunk, len(data))
        end = min(start + 2 * chunk, len(data))
        await writer.write([part for part in (data[start:middle], data[middle:end]) if part])


async def read_all(store: Store, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, start, end)])


async def sha256_of(store: Store, key: str) -> str:
    digest = hashlib.sha256()
    async for chunk in store.read(key):
        digest.update(chunk)
    return digest.hexdigest()


async def finished_upload(store: Store, upload_id: str, data: bytes) -> StoredUpload:
    """An upload of ``data``, written and finished in one go."""
    upload = await store.create(upload_id, len(data))
    async with store.open(upload) as writer:
        await write_all(writer, data)
        await writer.finish()
    return upload
