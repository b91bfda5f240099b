"""Who owns the uploads this instance has seen lately.

A PATCH or DELETE answers 404 for someone else's upload before it asks for the upload's lock
(asking makes the owner's PATCH in progress let go), and that check cost a database query per
PATCH, beside the one under the lock. An upload's owner never changes and its id is never given
again, so an entry is never wrong, only forgotten: when it is, the check asks the database.
Bounded: the least recently used entries go first.
"""

from __future__ import annotations

from app.lru import LRU


class Owners(LRU[str, str]):
    """Owner by upload id."""

    def __init__(self, capacity: int = 100_000) -> None:
        super().__init__(capacity)
