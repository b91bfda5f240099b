"""The catalogue's operations that touch both the database and the stores.

Physical deletion is crash-safe: the catalogue rows go in the same transaction that records a
pending deletion for each copy, the store deletes the bytes, then the pending row goes. A crash
in between leaves the pending row, and the sweeper finishes the job.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.context import Context
from app.db import files as file_queries
from app.db.audit import Event
from app.db.files import Copy
from app.settings import CACHE, Settings
from app.storage.base import Holder


async def drop_owner(ctx: Context, sha256: str, owner: str, event: Event) -> bool:
    """Remove one ownership, recording ``event`` with it; the bytes go with the last owner.
    False (and nothing recorded) if there was none."""
    copies = await file_queries.remove_owner(ctx.db, sha256, owner, event)
    if copies is None:
        return False
    await delete_copies(ctx, copies)
    return True


async def delete_copies(ctx: Context, copies: Sequence[Copy]) -> None:
    """Delete the bytes of copies the catalogue has let go, except in locations that forbid
    physical deletion: there the bytes stay, and only the pending deletion is forgotten."""
    for copy in copies:
        if _physical_deletion(ctx.settings, copy.location):
            await ctx.stores[copy.location].delete(copy.store_key)
        await file_queries.forget_deletion(ctx.db, copy)


def _physical_deletion(settings: Settings, location: str) -> bool:
    """Whether bytes in ``location`` are deleted when the catalogue lets them go; the restore
    cache's always are, and a location the settings no longer name is left alone."""
    if location == CACHE:
        return True
    return any(
        known.name == location and known.allow_physical_deletion for known in settings.locations
    )


async def set_hold(ctx: Context, sha256: str, held: bool) -> bool:
    """Put a file on legal hold or release it, in the catalogue and in the stores' own expiry
    rules; False if there is no such file."""
    copies = await file_queries.set_hold(ctx.db, sha256, held)
    if copies is None:
        return False
    await protect(ctx, copies, held=held)
    return True


async def protect(ctx: Context, copies: Sequence[Copy], *, held: bool) -> None:
    for copy in copies:
        store = ctx.stores[copy.location]
        if isinstance(store, Holder):
            await store.hold(copy.store_key, held)
