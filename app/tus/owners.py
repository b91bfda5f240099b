"""Who owns the uploads this instance has seen lately.

A PATCH or DELETE answers 404 for someone else's upload before it asks for the upload's lock
(asking makes the owner's PATCH in progress let go), and that check cost a database query per
PATCH, beside the one under the lock. An upload's owner never changes and its id is never given
again, so an entry is never wrong, only forgotten: when it is, the check asks the database.
Bounded: the least recently used entries go first.
"""

from __future__ import annotations

from collections import OrderedDict


class Owners:
    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._owners: OrderedDict[str, str] = OrderedDict()

    def get(self, upload_id: str) -> str | None:
        owner = self._owners.get(upload_id)
        if owner is not None:
            self._owners.move_to_end(upload_id)
        return owner

    def put(self, upload_id: str, owner: str) -> None:
        self._owners[upload_id] = owner
        self._owners.move_to_end(upload_id)
        if len(self._owners) > self._capacity:
            self._owners.popitem(last=False)
