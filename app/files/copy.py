"""Copying a file's bytes from one store into another, checked against its SHA-256 on the way.

Restores (cold location → cache) and tiering (hot → cold) both copy this way: the bytes stream
through in bounded batches, hashed off the event loop, and the new object only appears
(``finish``) once every byte arrived and the checksum matched, so a copy from a damaged source
never becomes a copy at all. On any failure the partial object is aborted.
"""

from __future__ import annotations

import hashlib
import secrets

import anyio

from app.storage.base import Store, Writer
from app.storage.errors import StorageError
from app.tus import checksum
from app.tus.checksum import Hash

BATCH = 1024 * 1024


class CorruptSource(StorageError):
    """The source's bytes do not have the file's size or SHA-256."""


def new_id(sha256: str) -> str:
    """A name of its own for every copy, so that two copies made at once never share one."""
    return f"{sha256}-{secrets.token_hex(4)}"


async def copy_verified(
    source: Store, key: str, target: Store, target_id: str, size: int, sha256: str
) -> str:
    """Copy object ``key`` of ``source`` into a new object of ``target`` named after
    ``target_id`` (as an upload of that id would be); returns the new object's key."""
    stored = await target.create(target_id, size)
    try:
        digest = hashlib.sha256()
        copied = 0
        async with target.open(stored) as writer:
            batch: list[bytes] = []
            async for chunk in source.read(key):
                batch.append(chunk)
                if sum(map(len, batch)) >= BATCH:
                    copied += await _write(writer, digest, batch)
                    batch = []
            if batch:
                copied += await _write(writer, digest, batch)
            if copied != size or digest.hexdigest() != sha256:
                raise CorruptSource(f"{source.name}/{key}: {copied} bytes, not {sha256} ({size})")
            await writer.finish()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await target.abort(stored)
        raise
    return stored.key


async def _write(writer: Writer, digest: Hash, batch: list[bytes]) -> int:
    await checksum.update([digest], batch)
    await writer.write(batch)
    return sum(map(len, batch))
