"""The life of an upload: create, report, complete, terminate (receiving is ``receive.py``).

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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from app.auth.principal import Principal
from app.context import Context
from app.db import audit
from app.db import files as file_queries
from app.db import uploads as queries
from app.db.audit import Event
from app.db.files import Copy
from app.db.uploads import COMPLETING, DONE, EXPIRED, RECEIVING, TERMINATED, Upload
from app.files import catalogue
from app.locks.base import LockTimeout
from app.quota import storage as storage_quota
from app.storage.base import Store, StoredUpload
from app.tus import checksum, errors
from app.tus.checksum import Hash
from app.tus.headers import metadata_text, parse_metadata


@dataclass(frozen=True)
class NewUpload:
    length: int | None  # None: deferred
    metadata: str  # the Upload-Metadata header, validated
    partial: bool = False
    expected_sha256: str | None = None  # the whole upload's digest, announced by the client


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
    ctx.owners.put(upload.id, upload.owner)
    if upload.state == EXPIRED or _overdue(upload):
        raise errors.EXPIRED
    if upload.state == TERMINATED:
        raise errors.TERMINATED
    return upload


async def check_owner(ctx: Context, upload_id: str, principal: Principal) -> None:
    """404 for someone else's upload, before its lock is asked for: asking makes the owner's
    PATCH in progress let go (found by tests/e2e/test_hostile_input.py). From what this instance
    remembers of the owner when it can; what else ``load`` refuses, it refuses under the lock."""
    owner = ctx.owners.get(upload_id)
    if owner is None:
        await load(ctx, upload_id, principal)
    elif owner != principal.id:
        raise errors.NOT_FOUND


def _overdue(upload: Upload) -> bool:
    """Past its expiry but not swept yet: already gone for the client."""
    return upload.state == RECEIVING and upload.expires_at is not None and upload.expires_at < now()


async def create(ctx: Context, principal: Principal, new: NewUpload) -> Upload:
    if new.length is not None:
        check_length(ctx, new.length)
    pairs = parse_metadata(new.metadata)
    upload = Upload(
        id=secrets.token_urlsafe(24),
        owner=principal.id,
        state=RECEIVING,
        length=new.length,
        offset=0,
        location=ctx.upload_store.name,
        store_key=None,
        created_at=now(),
        expires_at=expiry(ctx),
        metadata=new.metadata,
        filename=metadata_text(pairs, "filename", "name"),
        content_type=metadata_text(pairs, "filetype", "type", "contentType"),
        concat="partial" if new.partial else None,
        reserved=new.length or 0,
        expected_sha256=new.expected_sha256,
    )
    upload = await insert(ctx, upload, principal)
    if new.length == 0:
        return await _finish_empty(ctx, upload)
    return upload


async def insert(ctx: Context, upload: Upload, principal: Principal) -> Upload:
    """Record a new upload, admitted by the owner's quota under its lock; then create it in the
    store, and record where its bytes go.

    The row comes first, so that the store never holds an upload that no row names, whenever
    the process dies: one killed before recording the store's answer leaves a row that expires
    like any unfinished upload, and the sweeper then aborts what the store holds for it
    (``sweeper.reclaim``). A store that refuses ends the row at once.
    """
    async with storage_quota.reserving(ctx.db, ctx.settings, upload.owner, upload.length):
        await queries.insert(ctx.db, upload)
    ctx.owners.put(upload.id, upload.owner)
    try:
        held = await ctx.stores[upload.location].create(upload.id, upload.length)
    except Exception:
        await queries.end(ctx.db, upload, TERMINATED)
        raise
    await queries.hold_bytes(ctx.db, upload.id, held.key, held.state)
    await audit.record(
        ctx.db,
        Event(
            "upload.created",
            principal.id,
            owner=upload.owner,
            upload_id=upload.id,
            client=principal.address,
            detail={"length": upload.length, "name": upload.filename, "concat": upload.concat},
        ),
    )
    return replace(upload, store_key=held.key, store_state=held.state)


def expiry(ctx: Context) -> datetime:
    return now() + timedelta(seconds=ctx.settings.upload_expiry_seconds)


async def _finish_empty(ctx: Context, upload: Upload) -> Upload:
    async with ctx.locker.hold(upload.id, wait=ctx.settings.lock_wait_seconds):
        async with ctx.stores[upload.location].open(stored(upload)) as writer:
            await writer.finish()
        await queries.advance(ctx.db, upload, 0, expires_at=None, length=0, reserved=0)
        upload = replace(upload, state=COMPLETING)
        return await complete(ctx, upload, running=hashlib.sha256())


async def current(ctx: Context, upload_id: str, principal: Principal) -> Upload:
    """The upload as HEAD reports it: the store's commit record wins over a lagging database.

    Never waits for a lock. A store ahead of the database is a PATCH between its two commits,
    or one that a crash or a failed database write cut short. A PATCH of this instance records
    its own offset: HEAD reports what its store committed once its writer knows (before, the
    database's), without a store lookup or a database write. Writing queued behind every writer
    of the embedded database (HEAD p99 29 s at 400 uploads), and a lookup behind the S3 parts
    in flight (bench/RESULTS.md). With no PATCH here, the store's offset is recorded, so that
    the JSON API and the quotas see it too; a PATCH of another instance accepts a row already
    there (``queries.advance``).
    """
    upload = await load(ctx, upload_id, principal)
    if upload.state == RECEIVING and not upload.is_final:
        if upload.id in ctx.patching:
            upload = replace(upload, offset=max(upload.offset, ctx.patching[upload.id]))
        else:
            store_offset = await ctx.stores[upload.location].offset(stored(upload))
            upload = await adopt(ctx, upload, store_offset)
    if upload.state == COMPLETING:
        ctx.spawn(lambda: resume_completion(ctx, upload.id))
    return upload


async def adopt(ctx: Context, upload: Upload, store_offset: int) -> Upload:
    """The store's offset wins: ahead, a commit of ours the database missed; behind, bytes the
    store lost, which must not be written over at the database's offset (data out of place)."""
    if store_offset < upload.offset and upload.state == RECEIVING:
        await queries.rewind_to_store_offset(ctx.db, upload, store_offset)
        return replace(upload, offset=store_offset)
    if store_offset <= upload.offset:
        return upload
    await queries.adopt_store_offset(ctx.db, upload, store_offset)
    state = COMPLETING if store_offset == upload.length else upload.state
    return replace(upload, offset=store_offset, state=state)


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
    if upload.expected_sha256 is not None and sha256 != upload.expected_sha256:
        await _refuse(ctx, upload, sha256)
    done = replace(upload, state=DONE, sha256=sha256, completed_at=at, expires_at=None)
    registered = await file_queries.register(
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
        _event("upload.completed", upload, sha256, {"size": upload.offset}),
    )
    if registered is None:
        return done  # another completion of this upload registered it
    if registered.held:
        await catalogue.protect(ctx, [Copy(upload.location, key)], held=True)
    if registered.retired is not None:
        await catalogue.delete_copies(ctx, [registered.retired])
    return done


async def _refuse(ctx: Context, upload: Upload, sha256: str) -> None:
    """The bytes are not what the client announced: they never become a file."""
    if await queries.end(ctx.db, upload, TERMINATED):
        await release(ctx, upload)
        detail = {"expected_sha256": upload.expected_sha256}
        await audit.record(ctx.db, _event("upload.refused", upload, sha256, detail))
    raise errors.DIGEST_MISMATCH


def _event(action: str, upload: Upload, sha256: str, detail: dict[str, Any]) -> Event:
    """An audit event of the upload's owner, about the upload's bytes."""
    return Event(
        action, upload.owner, owner=upload.owner, upload_id=upload.id, sha256=sha256, detail=detail
    )


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
    await check_owner(ctx, upload_id, principal)
    async with ctx.locker.hold(upload_id, wait=ctx.settings.lock_wait_seconds):
        upload = await load(ctx, upload_id, principal)
        if not await queries.end(ctx.db, upload, TERMINATED):
            raise errors.NOT_FOUND.but("it changed meanwhile")
        await release(ctx, upload)
        event = Event(
            "upload.terminated",
            principal.id,
            owner=upload.owner,
            upload_id=upload.id,
            sha256=upload.sha256,
            client=principal.address,
        )
        if upload.state == DONE and upload.sha256 is not None:
            deleted = replace(event, action="file.deleted")
            if await catalogue.drop_owner(ctx, upload.sha256, upload.owner, deleted):
                return
        await audit.record(ctx.db, event)


async def release(ctx: Context, upload: Upload) -> None:
    """Free the bytes an upload itself still holds (parts, tail, a partial's object). Idempotent."""
    if upload.store_key is None:
        return
    store = ctx.stores[upload.location]
    await store.abort(stored(upload))
    await store.delete(upload.store_key)
    await queries.forget_bytes(ctx.db, upload.id)
