"""The running SHA-256 of uploads in progress on this instance.

hashlib cannot export its state, so the running hash lives in memory, keyed by upload and the
offset it covers. When a PATCH lands on another instance, or after a restart, the offsets no
longer match, the entry is dropped and completion re-reads the bytes from the store instead.
Bounded: the least recently used entries go first.
"""

from __future__ import annotations

from app.lru import LRU
from app.tus.checksum import Hash


class RunningHashes:
    def __init__(self, capacity: int = 10_000) -> None:
        self._entries: LRU[str, tuple[int, Hash]] = LRU(capacity)

    def take(self, upload_id: str, offset: int) -> Hash | None:
        """The hash covering exactly ``offset`` bytes, removed from the cache; else None."""
        entry = self._entries.pop(upload_id)
        if entry is None or entry[0] != offset:
            return None
        return entry[1]

    def put(self, upload_id: str, offset: int, hash_: Hash) -> None:
        self._entries.put(upload_id, (offset, hash_))
