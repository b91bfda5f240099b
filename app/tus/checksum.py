"""Hash algorithms for the checksum extension, and hashing off the event loop.

hashlib releases the GIL on large inputs, so a batch of chunks hashed in a worker thread runs
beside the event loop instead of stalling it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from anyio import to_thread

Hash = Any  # hashlib's hash objects have no public type
ALGORITHMS: dict[str, Callable[[], Hash]] = {
    "sha1": hashlib.sha1,
    "md5": hashlib.md5,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}


def update_blocking(hashes: Sequence[Hash], chunks: Sequence[bytes]) -> None:
    for chunk in chunks:
        for hash_ in hashes:
            hash_.update(chunk)


async def update(hashes: Sequence[Hash], chunks: Sequence[bytes]) -> None:
    if hashes and chunks:
        await to_thread.run_sync(update_blocking, hashes, chunks)
