"""Receiving a PATCH body into an upload: the hot path.

Under the upload's lock: adopt the store's offset, check the request against the upload, its
length and (for a deferred length) the owner's quota, stream the body into the store while
hashing it, commit in the store, then in the database — and complete the upload when its last
byte arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from functools import partial

from app import metrics
from app.auth.principal import Principal
from app.context import Context
from app.db import uploads as queries
from app.db.uploads import COMPLETING, DONE, RECEIVING, Upload
from app.locks.base import LockTimeout
from app.quota import patches
from app.quota import storage as storage_quota
from app.storage.base import BlockingWriter, Writer
from app.tus import checksum, concat, errors, lifecycle
from app.tus.body import BodyReader, End
from app.tus.checksum import ALGORITHMS, Hash
from app.tus.headers import Checksum

# Up to this many PATCHes receiving at once in this process, a batch is written and hashed on
# the event loop: a thread hop waits ~0.7 ms for idle cores to wake (on a VM), twice the write
# and the SHA-256 of a 256 KiB batch; one upload ran 141 -> 220 MiB/s. Past it, threads: at 10
# uploads the loop's HEADs took half as long again, and at 400 threads ran 15 % faster, letting
# hashing use the other cores (bench/RESULTS.md, optimisation 21).
INLINE_PATCHES = 8


@dataclass(frozen=True)
class Chunk:
    """What a PATCH (or a POST with a body) brings."""

    offset: int
    reader: BodyReader
    checksum: Checksum | None = None
    length: int | None = None  # Upload-Length declared now, for a deferred upload
    content_length: int | None = None
    completes: bool = False  # the body, if it arrives whole, ends the upload (Upload-Complete: ?1)


async def write(ctx: Context, upload_id: str, principal: Principal, chunk: Chunk) -> Upload:
    """Receive one PATCH body into the upload; returns the upload as committed."""
    ctx.receiving.add(chunk.reader.stop)
    metrics.PATCHES_IN_PROGRESS.inc()
    try:
        return await _write(ctx, upload_id, principal, chunk)
    finally:
        ctx.receiving.discard(chunk.reader.stop)
        metrics.PATCHES_IN_PROGRESS.dec()


async def _write(ctx: Context, upload_id: str, principal: Principal, chunk: Chunk) -> Upload:
    await lifecycle.check_owner(ctx, upload_id, principal)
    asked = time.perf_counter()
    async with (
        ctx.locker.hold(upload_id, wait=ctx.settings.lock_wait_seconds) as lease,
        AsyncExitStack() as slot,
    ):
        metrics.LOCK_WAIT.observe(time.perf_counter() - asked)
        lease.on_release_requested(chunk.reader.stop)
        ctx.patching[upload_id] = 0
        slot.callback(ctx.patching.pop, upload_id, None)
        # One of the owner's slots (429 before a byte is read when all are taken), asked for
        # once the upload is held: a stuck PATCH of this upload has let go of its own by then.
        limit = ctx.settings.max_concurrent_patches
        await patches.take_slot(slot, ctx.locker, principal.id, limit)
        upload = await lifecycle.load(ctx, upload_id, principal)
        if upload.is_final:
            raise errors.PATCH_FINAL
        if upload.state == DONE:
            return _already_complete(upload, chunk)
        running: Hash | None = None
        async with ctx.stores[upload.location].open(lifecycle.stored(upload)) as writer:
            upload = await lifecycle.adopt(ctx, upload, writer.offset)
            ctx.patching[upload_id] = writer.offset
            if upload.state == COMPLETING:
                return _already_complete(upload, chunk)
            if chunk.offset != upload.offset:
                raise errors.OFFSET_MISMATCH.but(f"upload is at {upload.offset}")
            length = _declared_length(ctx, upload, _announced_length(chunk))
            room, too_much = await _room(ctx, upload, length, chunk.content_length)
            running = _running_hash(ctx, upload)
            try:
                received = await _receive(ctx, writer, chunk, running, room, too_much)
                if lease.lost:
                    raise LockTimeout(upload_id)
                completed = chunk.completes and chunk.reader.end is End.COMPLETE
                upload = await _commit(ctx, writer, upload, received, length, completed)
            except Exception:
                if upload.length is None:  # give back the room reserved for this PATCH
                    await queries.set_reserved(ctx.db, upload.id, upload.offset)
                raise
        if upload.state == COMPLETING:
            upload = await lifecycle.complete(ctx, upload, running=running)
        elif running is not None:
            ctx.hashes.put(upload.id, upload.offset, running)
    if upload.is_partial and upload.state == DONE:
        await concat.assemble_waiting(ctx, upload)
    return upload


def _already_complete(upload: Upload, chunk: Chunk) -> Upload:
    """A PATCH to an upload that has all its bytes: fine if it brings nothing new."""
    if chunk.offset != upload.offset:
        raise errors.OFFSET_MISMATCH.but(f"upload is complete at {upload.offset}")
    if chunk.content_length:
        raise errors.BODY_TOO_LARGE.but("the upload is already complete")
    return upload


def _announced_length(chunk: Chunk) -> int | None:
    """Upload-Length, or the length that a completing body of known size implies."""
    if not chunk.completes or chunk.content_length is None:
        return chunk.length
    implied = chunk.offset + chunk.content_length
    if chunk.length is not None and chunk.length != implied:
        raise errors.LENGTH_DISAGREES.but(f"{chunk.length} != {implied}")
    return implied


def _declared_length(ctx: Context, upload: Upload, declared: int | None) -> int | None:
    if declared is None or declared == upload.length:
        return upload.length
    if upload.length is not None:
        raise errors.LENGTH_ALREADY_SET.but(f"it is {upload.length}")
    lifecycle.check_length(ctx, declared)
    if declared < upload.offset:
        raise errors.LENGTH_BELOW_OFFSET.but(f"{declared} < {upload.offset}")
    return declared


async def _room(
    ctx: Context, upload: Upload, length: int | None, content_length: int | None
) -> tuple[int, Exception]:
    """How many bytes this PATCH may bring, and what to answer when the body brings more.

    An upload of known length was admitted whole at creation; one whose length was deferred
    until now is checked against its owner's quota as its bytes arrive.
    """
    room = (length if length is not None else ctx.settings.max_size) - upload.offset
    if content_length is not None and content_length > room:
        raise errors.BODY_TOO_LARGE.but(f"{content_length} > {room} remaining")
    if upload.length is not None:
        return room, errors.BODY_TOO_LARGE.but(f"more than {room} bytes remaining")
    wanted = length
    if wanted is None and content_length is not None:
        wanted = upload.offset + content_length
    allowed = await storage_quota.reserve_growth(ctx.db, ctx.settings, upload, wanted)
    if allowed - upload.offset < room:
        quota = storage_quota.QuotaExceeded(
            f"storage quota: this upload may not grow past {allowed} bytes"
        )
        return allowed - upload.offset, quota
    return room, errors.BODY_TOO_LARGE.but(f"more than {room} bytes remaining")


def _running_hash(ctx: Context, upload: Upload) -> Hash | None:
    if upload.is_partial:
        return None  # partial uploads are not files: the final upload is hashed instead
    if upload.offset == 0:
        return hashlib.sha256()
    return ctx.hashes.take(upload.id, upload.offset)


async def _receive(
    ctx: Context,
    writer: Writer,
    chunk: Chunk,
    running: Hash | None,
    room: int,
    too_much: Exception,
) -> int:
    """Stream the body into the writer; returns the bytes staged (all of them, or raises)."""
    verify = ALGORITHMS[chunk.checksum.algorithm]() if chunk.checksum else None
    hashes = [hash_ for hash_ in (running, verify) if hash_ is not None]
    inline = len(ctx.receiving) <= INLINE_PATCHES
    batch: list[bytes] = []
    batched = 0
    total = 0
    async for data in chunk.reader.chunks():
        total += len(data)
        if total > room:
            raise too_much
        batch.append(data)
        batched += len(data)
        del data  # the batch's own once written: not kept while the next bytes are awaited
        if batched >= ctx.settings.write_batch_size:
            await _flush(ctx, writer, hashes, batch, inline)
            batch, batched = [], 0
    await _flush(ctx, writer, hashes, batch, inline)
    if chunk.checksum is not None and verify is not None:
        if chunk.reader.end is not End.COMPLETE:
            raise errors.INCOMPLETE_CHECKED_BODY
        if verify.digest() != chunk.checksum.digest:
            raise errors.CHECKSUM_MISMATCH.but(f"{chunk.checksum.algorithm} of the body differs")
    return total


async def _flush(
    ctx: Context, writer: Writer, hashes: Sequence[Hash], batch: list[bytes], inline: bool
) -> None:
    """Store and hash the batch. A writer that can write blocking does both right here when
    ``inline`` (few PATCHes: see ``INLINE_PATCHES``), else in one hop to the context's worker
    threads; otherwise both run at once, the hashing in those threads (hashlib lets go of the
    GIL), the store's write in this task."""
    if not batch:
        return
    if isinstance(writer, BlockingWriter):
        if inline:
            _write_and_hash(writer, hashes, batch)
        else:
            await ctx.workers.run(partial(_write_and_hash, writer, hashes, batch))
        return
    hashing = None
    if hashes:
        hashing = asyncio.ensure_future(
            ctx.workers.run(partial(checksum.update_blocking, hashes, batch))
        )
    try:
        await writer.write(batch)
    finally:
        if hashing is not None:
            await hashing


def _write_and_hash(writer: BlockingWriter, hashes: Sequence[Hash], batch: list[bytes]) -> None:
    writer.write_blocking(batch)
    checksum.update_blocking(hashes, batch)


async def _commit(
    ctx: Context,
    writer: Writer,
    upload: Upload,
    received: int,
    length: int | None,
    completed: bool,
) -> Upload:
    """Store first, database second: after a crash in between, the store is ahead.

    ``completed``: the client said this body ends the upload, and all of it arrived.
    """
    new_offset = upload.offset + received
    if completed and length is None:
        lifecycle.check_length(ctx, new_offset)
        length = new_offset
    elif completed and new_offset != length:
        raise errors.LENGTH_DISAGREES.but(f"{new_offset} bytes of {length} received")
    if new_offset == length:
        with metrics.timed(metrics.STORE_DURATION, upload.location, "finish"):
            await writer.finish()
    elif received:
        with metrics.timed(metrics.STORE_DURATION, upload.location, "commit"):
            await writer.commit()
    ctx.patching[upload.id] = new_offset
    if not received and length == upload.length:
        return upload
    expires_at = None if new_offset == length else lifecycle.expiry(ctx)
    reserved = length if length is not None else new_offset
    if not await queries.advance(
        ctx.db, upload, new_offset, expires_at=expires_at, length=length, reserved=reserved
    ):
        raise errors.OFFSET_MISMATCH.but("the upload moved under this request")
    state = COMPLETING if new_offset == length else RECEIVING
    return replace(
        upload,
        offset=new_offset,
        length=length,
        state=state,
        expires_at=expires_at,
        reserved=reserved,
    )
