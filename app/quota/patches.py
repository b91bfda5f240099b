"""How many requests one user may have sending upload bytes at once (``max_concurrent_patches``).

A tus client sends one PATCH per upload at a time, and a page a few uploads at once; a user with
dozens of PATCHes open at once — each trickling a byte now and then, or stalled — holds
connections, locks and spool files that everyone else needs. Past the cap, a request is refused
before it reads a byte.

The slots are leases of the lock service (``app/locks``), keys ``patches:USER:0`` to ``:N-1``:
with Redis every instance counts the same slots, and the slots of an instance that died free
themselves when their leases expire; in process they are this instance's. Taking a slot never
disturbs its holder (``request_release=False``).
"""

from __future__ import annotations

import random
from contextlib import AsyncExitStack

from app.locks.base import Locker, LockTimeout

RETRY_AFTER_SECONDS = 5


class TooManyPatches(Exception):
    """Every slot of the user is taken; the message names the limit."""


async def take_slot(stack: AsyncExitStack, locker: Locker, user: str, limit: int | None) -> None:
    """Hold one of ``user``'s ``limit`` slots until ``stack`` closes (None: no limit)."""
    if limit is None:
        return
    first = random.randrange(limit)  # a user with many running finds a free slot in few tries
    for index in ((first + step) % limit for step in range(limit)):
        try:
            await stack.enter_async_context(
                locker.hold(f"patches:{user}:{index}", wait=0, request_release=False)
            )
            return
        except LockTimeout:
            continue
    raise TooManyPatches(
        f"too many uploads sending at once: {limit} of max_concurrent_patches {limit}"
    )
