"""The concatenation extension: a final upload assembled from finished partial uploads.

The store joins the objects itself (S3 UploadPartCopy, kernel copy on a filesystem), so the
bytes do not travel through Python; only the SHA-256 of the result is read back.
"""

from __future__ import annotations

import secrets

from app.auth.principal import Principal
from app.context import Context
from app.db import uploads as queries
from app.db.uploads import DONE, RECEIVING, Upload
from app.quota import storage as storage_quota
from app.storage.base import Concatenator, Source
from app.tus import errors, lifecycle
from app.tus.headers import metadata_text, parse_metadata


async def create_final(
    ctx: Context, principal: Principal, partial_ids: tuple[str, ...], metadata: str
) -> Upload:
    store = ctx.upload_store
    if not isinstance(store, Concatenator):
        raise errors.INVALID_CONCAT.but("this store cannot concatenate")
    found = await queries.get_many(ctx.db, list(partial_ids))
    sources = [
        _source(found.get(upload_id), upload_id, principal, store.name) for upload_id in partial_ids
    ]
    length = sum(source.size for source in sources)
    lifecycle.check_length(ctx, length)
    await storage_quota.admit(ctx.db, ctx.settings, principal.id, length)
    pairs = parse_metadata(metadata)
    upload_id = secrets.token_urlsafe(24)
    held = await store.create(upload_id, length)
    upload = Upload(
        id=upload_id,
        owner=principal.id,
        state=RECEIVING,
        length=length,
        offset=0,
        location=store.name,
        store_key=held.key,
        store_state=held.state,
        created_at=lifecycle.now(),
        expires_at=lifecycle.expiry(ctx),
        metadata=metadata,
        filename=metadata_text(pairs, "filename", "name"),
        content_type=metadata_text(pairs, "filetype", "type", "contentType"),
        concat="final",
        partials=list(partial_ids),
        reserved=length,
    )
    await lifecycle.insert(ctx, upload, principal)
    await store.concatenate(held, sources)
    await queries.advance(ctx.db, upload, length, expires_at=None, length=length, reserved=length)
    return await lifecycle.complete(ctx, upload, running=None)


def _source(partial: Upload | None, upload_id: str, principal: Principal, location: str) -> Source:
    if partial is None or partial.owner != principal.id or not partial.is_partial:
        raise errors.PARTIAL_NOT_FOUND.but(upload_id)
    if partial.state != DONE or partial.store_key is None or partial.length is None:
        raise errors.PARTIAL_NOT_FINISHED.but(upload_id)
    if partial.location != location:
        raise errors.PARTIAL_NOT_FOUND.but(f"{upload_id} lies in another location")
    return Source(key=partial.store_key, size=partial.length)
