"""The life of an upload: create, receive bytes, complete, terminate.

This is where the protocol's rules meet the store and the database; it knows the store only
through ``storage/base.py``. The ordering that keeps acknowledged bytes safe:

1. a PATCH holds the upload's lock (another request asking for it makes this one stop reading
   and save what it has);
2. bytes are staged in the store, hashed on the way (running SHA-256, optional chunk checksum);
3. the store commits (durable), *then* the database offset moves (compare-and-set) — so after a
   crash the store can only be ahead, and the next HEAD or PATCH adopts its offset;
4. on the last byte the store assembles the object and the file is registered by its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from app.auth.principal import Principal
from app.context import Context
from app.db import files as file_queries
from app.db import uploads as queries
from app.db.uploads import COMPLETING, DONE, EXPIRED, RECEIVING, TERMINATED, Upload
from app.locks.base import LockTimeout
from app.storage.base import Store, StoredUpload, Writer
from app.tus import checksum, errors
from app.tus.body import BodyReader, End
from app.tus.checksum import ALGORITHMS, Hash
from app.tus.headers import Checksum, metadata_text, parse_metadata


@dataclass(frozen=True)
class NewUpload:
    length: int | None  # None: deferred
    metadata: str  # the Upload-Metadata header, validated
    partial: bool = False


@dataclass(frozen=True)
class Chunk:
    """What a PATCH (or a POST with a body) brings."""

    offset: int
    reader: BodyReader
    checksum: Checksum | None = None
    length: int | None = None  # Upload-Length declared now, for a deferred upload
    content_length: int | None = None


def now() -> datetime:
    return datetime.now(UTC)


def stored(upload: Upload) -> StoredUpload:
    if upload.store_key is None:
        raise errors.NOT_FOUND.but("its bytes are no longer held")
    return StoredUpload(key=upload.store_key, length=upload.length, state=upload.store_state)


def check_length(ctx: Context, length: int) -> None:
    if length > ctx.settings.max_size:
        raise errors.TOO_LARGE.but(f"{length} > {ctx.settings.max_size}")
    if length < ctx.settings.min_size:
        raise errors.TOO_SMALL.but(f"{length} < {ctx.settings.min_size}")


async def load(ctx: Context, upload_id: str, principal: Principal) -> Upload:
    """The caller's upload; someone else's is as unknown as a missing one."""
    upload = await queries.get(ctx.db, upload_id)
    if upload is None or upload.owner != principal.id:
        raise errors.NOT_FOUND
    if upload.state == EXPIRED or _overdue(upload):
        raise errors.EXPIRED
    if upload.state == TERMINATED:
        raise errors.TERMINATED
    return upload


def _overdue(upload: Upload) -> bool:
    """Past its expiry but not swept yet: already gone for the client."""
    return upload.state == RECEIVING and upload.expires_at is not None and upload.expires_at < now()


async def create(ctx: Context, principal: Principal, new: NewUpload) -> Upload:
    if new.length is not None:
        check_length(ctx, new.length)
    pairs = parse_metadata(new.metadata)
    upload_id = secrets.token_urlsafe(24)
    store = ctx.upload_store
    held = await store.create(upload_id, new.length)
    upload = Upload(
        id=upload_id,
        owner=principal.id,
        state=RECEIVING,
        length=new.length,
        offset=0,
        location=store.name,
        store_key=held.key,
        store_state=held.state,
        created_at=now(),
        expires_at=expiry(ctx),
        metadata=new.metadata,
        filename=metadata_text(pairs, "filename", "name"),
        content_type=metadata_text(pairs, "filetype", "type", "contentType"),
        concat="partial" if new.partial else None,
    )
    await queries.insert(ctx.db, upload)
    if new.length == 0:
        return await _finish_empty(ctx, upload)
    return upload


def expiry(ctx: Context) -> datetime:
    return now() + timedelta(seconds=ctx.settings.upload_expiry_seconds)


async def _finish_empty(ctx: Context, upload: Upload) -> Upload:
    async with ctx.locker.hold(upload.id, wait=ctx.settings.lock_wait_seconds):
        async with ctx.stores[upload.location].open(stored(upload)) as writer:
            await writer.finish()
        await queries.advance(ctx.db, upload, 0, expires_at=None, length=0)
        upload = replace(upload, state=COMPLETING)
        return await complete(ctx, upload, running=hashlib.sha256())


async def current(ctx: Context, upload_id: str, principal: Principal) -> Upload:
    """The upload as HEAD reports it: the store's commit record wins over a lagging database.

    Never waits for a lock: a PATCH in progress has not committed yet, so the store and the
    database agree on everything before it.
    """
    upload = await load(ctx, upload_id, principal)
    if upload.state == RECEIVING and not upload.is_final:
        store_offset = await ctx.stores[upload.location].offset(stored(upload))
        upload = await _adopt(ctx, upload, store_offset)
    if upload.state == COMPLETING:
        ctx.spawn(lambda: resume_completion(ctx, upload.id))
    return upload


async def _adopt(ctx: Context, upload: Upload, store_offset: int) -> Upload:
    if store_offset <= upload.offset:
        return upload
    await queries.adopt_store_offset(ctx.db, upload, store_offset)
    state = COMPLETING if store_offset == upload.length else upload.state
    return replace(upload, offset=store_offset, state=state)


async def write(ctx: Context, upload_id: str, principal: Principal, chunk: Chunk) -> Upload:
    """Receive one PATCH body into the upload; returns the upload as committed."""
    async with ctx.locker.hold(upload_id, wait=ctx.settings.lock_wait_seconds) as lease:
        lease.on_release_requested(chunk.reader.stop)
        upload = await load(ctx, upload_id, principal)
        if upload.is_final:
            raise errors.PATCH_FINAL
        if upload.state == DONE:
            return _already_complete(upload, chunk)
        running: Hash | None = None
        async with ctx.stores[upload.location].open(stored(upload)) as writer:
            upload = await _adopt(ctx, upload, writer.offset)
            if upload.state == COMPLETING:
                return _already_complete(upload, chunk)
            if chunk.offset != upload.offset:
                raise errors.OFFSET_MISMATCH.but(f"upload is at {upload.offset}")
            length = await _declare_length(ctx, upload, chunk.length)
            limit = (length if length is not None else ctx.settings.max_size) - upload.offset
            if chunk.content_length is not None and chunk.content_length > limit:
                raise errors.BODY_TOO_LARGE.but(f"{chunk.content_length} > {limit} remaining")
            running = _running_hash(ctx, upload)
            received = await _receive(ctx, writer, chunk, running, limit)
            if lease.lost:
                raise LockTimeout(upload_id)
            new_offset = upload.offset + received
            if new_offset == length:
                await writer.finish()
            elif received:
                await writer.commit()
            if received or length != upload.length:
                expires_at = None if new_offset == length else expiry(ctx)
                if not await queries.advance(
                    ctx.db, upload, new_offset, expires_at=expires_at, length=length
                ):
                    raise errors.OFFSET_MISMATCH.but("the upload moved under this request")
                state = COMPLETING if new_offset == length else RECEIVING
                upload = replace(
                    upload, offset=new_offset, length=length, state=state, expires_at=expires_at
                )
        if upload.state == COMPLETING:
            return await complete(ctx, upload, running=running)
        if running is not None:
            ctx.hashes.put(upload.id, upload.offset, running)
        return upload


def _already_complete(upload: Upload, chunk: Chunk) -> Upload:
    """A PATCH to an upload that has all its bytes: fine if it brings nothing new."""
    if chunk.offset != upload.offset:
        raise errors.OFFSET_MISMATCH.but(f"upload is complete at {upload.offset}")
    if chunk.content_length:
        raise errors.BODY_TOO_LARGE.but("the upload is already complete")
    return upload


async def _declare_length(ctx: Context, upload: Upload, declared: int | None) -> int | None:
    if declared is None or declared == upload.length:
        return upload.length
    if upload.length is not None:
        raise errors.LENGTH_ALREADY_SET.but(f"it is {upload.length}")
    check_length(ctx, declared)
    if declared < upload.offset:
        raise errors.LENGTH_BELOW_OFFSET.but(f"{declared} < {upload.offset}")
    return declared


def _running_hash(ctx: Context, upload: Upload) -> Hash | None:
    if upload.is_partial:
        return None  # partial uploads are not files: the final upload is hashed instead
    if upload.offset == 0:
        return hashlib.sha256()
    return ctx.hashes.take(upload.id, upload.offset)


async def _receive(
    ctx: Context, writer: Writer, chunk: Chunk, running: Hash | None, limit: int
) -> int:
    """Stream the body into the writer; returns the bytes staged (all of them, or raises)."""
    verify = ALGORITHMS[chunk.checksum.algorithm]() if chunk.checksum else None
    hashes = [hash_ for hash_ in (running, verify) if hash_ is not None]
    batch: list[bytes] = []
    batched = 0
    total = 0
    async for data in chunk.reader.chunks():
        total += len(data)
        if total > limit:
            raise errors.BODY_TOO_LARGE.but(f"more than {limit} bytes remaining")
        batch.append(data)
        batched += len(data)
        if batched >= ctx.settings.write_batch_size:
            await _flush(writer, hashes, batch)
            batch, batched = [], 0
    await _flush(writer, hashes, batch)
    if chunk.checksum is not None and verify is not None:
        if chunk.reader.end is not End.COMPLETE:
            raise errors.INCOMPLETE_CHECKED_BODY
        if verify.digest() != chunk.checksum.digest:
            raise errors.CHECKSUM_MISMATCH.but(f"{chunk.checksum.algorithm} of the body differs")
    return total


async def _flush(writer: Writer, hashes: Sequence[Hash], batch: list[bytes]) -> None:
    if batch:
        await checksum.update(hashes, batch)
        await writer.write(batch)


async def complete(ctx: Context, upload: Upload, *, running: Hash | None) -> Upload:
    """All bytes are in the store as one object: hash, then register (or keep as a partial)."""
    at = now()
    if upload.is_partial:
        # Kept for final uploads to use until it expires like an unfinished upload would.
        expires_at = expiry(ctx)
        await queries.finish(
            ctx.db, upload.id, sha256=None, store_key=upload.store_key, at=at, expires_at=expires_at
        )
        return replace(upload, state=DONE, completed_at=at, expires_at=expires_at)
    store = ctx.stores[upload.location]
    key = stored(upload).key
    sha256 = running.hexdigest() if running is not None else await hash_object(store, key)
    kept = await file_queries.register(
        ctx.db,
        file_queries.NewFile(
            sha256=sha256,
            size=upload.offset,
            location=upload.location,
            store_key=key,
            owner=upload.owner,
            name=upload.filename,
            content_type=upload.content_type,
            upload_id=upload.id,
            created_at=at,
            expires_at=at + timedelta(days=ctx.settings.retention_days),
        ),
    )
    if not kept:
        await store.delete(key)
        await queries.forget_bytes(ctx.db, upload.id)
    return replace(upload, state=DONE, sha256=sha256, completed_at=at, expires_at=None)


async def hash_object(store: Store, key: str) -> str:
    """SHA-256 of a finished object, streamed back from the store (hashed off the loop)."""
    sha256 = hashlib.sha256()
    batch: list[bytes] = []
    batched = 0
    async for data in store.read(key):
        batch.append(data)
        batched += len(data)
        if batched >= 1024 * 1024:
            await checksum.update([sha256], batch)
            batch, batched = [], 0
    await checksum.update([sha256], batch)
    return sha256.hexdigest()


async def resume_completion(ctx: Context, upload_id: str) -> None:
    """Finish an upload whose last bytes were stored but whose completion was cut short.

    Run from HEAD and from the sweeper; skips quietly when a request holds the upload.
    """
    try:
        async with ctx.locker.hold(upload_id, wait=0, request_release=False):
            upload = await queries.get(ctx.db, upload_id)
            if upload is None or upload.state != COMPLETING:
                return
            async with ctx.stores[upload.location].open(stored(upload)) as writer:
                await writer.finish()
            assert upload.length is not None
            await complete(ctx, upload, running=ctx.hashes.take(upload.id, upload.length))
    except LockTimeout:
        return


async def terminate(ctx: Context, upload_id: str, principal: Principal) -> None:
    """DELETE: stop any PATCH in progress, then free the upload and what it holds.

    The row changes first and the bytes go second: a crash in between leaves bytes that the
    sweeper finds (an ended upload still naming a store key) and frees.
    """
    async with ctx.locker.hold(upload_id, wait=ctx.settings.lock_wait_seconds):
        upload = await load(ctx, upload_id, principal)
        if not await queries.end(ctx.db, upload, TERMINATED):
            raise errors.NOT_FOUND.but("it changed meanwhile")
        await release(ctx, upload)
        if upload.state == DONE and upload.sha256 is not None:
            copies = await file_queries.remove_owner(ctx.db, upload.sha256, upload.owner)
            for copy in copies or []:
                await ctx.stores[copy.location].delete(copy.store_key)


async def release(ctx: Context, upload: Upload) -> None:
    """Free the bytes an upload itself still holds (parts, tail, a partial's object). Idempotent."""
    if upload.store_key is None:
        return
    store = ctx.stores[upload.location]
    await store.abort(stored(upload))
    await store.delete(upload.store_key)
    await queries.forget_bytes(ctx.db, upload.id)
