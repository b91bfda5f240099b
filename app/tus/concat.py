"""The concatenation extensions: a final upload assembled from partial uploads.

The store joins the objects itself (S3 UploadPartCopy, kernel copy on a filesystem), so the
bytes do not travel through Python; only the SHA-256 of the result is read back.

With ``concatenation-unfinished`` a final upload may name partial uploads still in progress
(tus-js-client's ``parallelUploads`` can do that). It is then assembled when its last partial
finishes, by the request that finished it; a HEAD on the final upload retries an assembly that a
crash or a store error cut short.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace

from app.auth.principal import Principal
from app.context import Context
from app.db import uploads as queries
from app.db.uploads import COMPLETING, DONE, RECEIVING, Upload
from app.locks.base import LockTimeout
from app.storage.base import Concatenator, Source, Store
from app.tus import errors, lifecycle
from app.tus.headers import metadata_text, parse_metadata

log = logging.getLogger("tusgate.tus.concat")


async def create_final(
    ctx: Context, principal: Principal, partial_ids: tuple[str, ...], metadata: str
) -> Upload:
    store = ctx.upload_store
    _concatenator(store)  # refused before anything is created
    found = await queries.get_many(ctx.db, list(partial_ids))
    partials = [_partial(found.get(i), i, principal, store.name) for i in partial_ids]
    lengths = [partial.length for partial in partials]
    length = None if None in lengths else sum(length or 0 for length in lengths)
    if length is not None:
        lifecycle.check_length(ctx, length)
    pairs = parse_metadata(metadata)
    upload = Upload(
        id=secrets.token_urlsafe(24),
        owner=principal.id,
        state=RECEIVING,
        length=length,
        offset=0,
        location=store.name,
        store_key=None,
        created_at=lifecycle.now(),
        expires_at=lifecycle.expiry(ctx),
        metadata=metadata,
        filename=metadata_text(pairs, "filename", "name"),
        content_type=metadata_text(pairs, "filetype", "type", "contentType"),
        concat="final",
        partials=list(partial_ids),
        reserved=length or 0,
    )
    upload = await lifecycle.insert(ctx, upload, principal)
    try:
        return await assemble(ctx, upload.id) or upload
    except Exception as exc:
        # It exists now (a full disk, a store away): the client gets its URL, and a HEAD on it
        # retries the assembly.
        if errors.to_tus_error(exc) is None:
            raise
        log.warning("assembling final upload %s failed; a HEAD on it retries: %s", upload.id, exc)
        return upload


def _concatenator(store: Store) -> Concatenator:
    if not isinstance(store, Concatenator):
        raise errors.INVALID_CONCAT.but("this store cannot concatenate")
    return store


def _partial(partial: Upload | None, upload_id: str, principal: Principal, location: str) -> Upload:
    if partial is None or partial.owner != principal.id or not partial.is_partial:
        raise errors.PARTIAL_NOT_FOUND.but(upload_id)
    if partial.state not in (RECEIVING, COMPLETING, DONE) or partial.store_key is None:
        raise errors.PARTIAL_NOT_FOUND.but(f"{upload_id} has ended")
    if partial.location != location:
        raise errors.PARTIAL_NOT_FOUND.but(f"{upload_id} lies in another location")
    return partial


async def assemble(ctx: Context, final_id: str) -> Upload | None:
    """Join a final upload whose partials are all finished; None while it must wait.

    Under the final upload's lock, taken without waiting: whoever holds it is assembling it.
    """
    try:
        async with ctx.locker.hold(final_id, wait=0, request_release=False):
            final = await queries.get(ctx.db, final_id)
            if final is None or final.state != RECEIVING or final.store_key is None:
                return None  # done, ended, or never created in the store (a crash)
            found = await queries.get_many(ctx.db, final.partials or [])
            partials = [found.get(i) for i in final.partials or []]
            sources = [
                Source(key=p.store_key, size=p.length)
                for p in partials
                if p is not None and p.state == DONE and p.store_key and p.length is not None
            ]
            if len(sources) != len(partials):
                return None
            length = sum(source.size for source in sources)
            await _concatenator(ctx.stores[final.location]).concatenate(
                lifecycle.stored(final), sources
            )
            await queries.advance(
                ctx.db, final, length, expires_at=None, length=length, reserved=length
            )
            assembled = replace(final, offset=length, length=length, state=COMPLETING)
            return await lifecycle.complete(ctx, assembled, running=None)
    except LockTimeout:
        return None


async def assemble_waiting(ctx: Context, partial: Upload) -> None:
    """After ``partial`` finished: assemble the final uploads that were waiting for it.

    The partial's own request has succeeded whatever happens here, so a failure is logged and
    left for a HEAD on the final upload to retry.
    """
    for final in await queries.finals_waiting_for(ctx.db, partial):
        try:
            await assemble(ctx, final.id)
        except Exception:
            log.exception("assembling final upload %s failed; a HEAD on it retries", final.id)
