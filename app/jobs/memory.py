"""Giving the memory freed by request bodies back to the system once the process grows past a
soft limit (``memory_trim_above_bytes``), like Go's GOMEMLIMIT.

Under many stalled uploads (400 at once on a slow S3) the process allocates and frees blocks of
64 KiB to 1 MiB all the time: socket reads of up to 256 KiB, bodies joined by the ASGI server,
batches of ``write_batch_size``. glibc's allocator keeps what is freed in its heaps for reuse,
so the resident size grows with its holes: 313 to 335 MiB at the peak. ``malloc_trim(0)`` hands
the free pages inside the heaps back; every 0.25 s it took 0.7 ms and the peak fell to 263 to
282 MiB, about half of it alive (bench/RESULTS.md, optimisation 23).

Not below the limit: the pages given back are faulted in again when next used, which costs
where bytes flow fast. Trimming always, 400 uploads on the filesystem store (148 MiB) ran at
232 instead of 268 MiB/s. glibc's ``MALLOC_MMAP_THRESHOLD_`` got the S3 peak lower (256 MiB),
but at a fifth more CPU all the time: every such block became an ``mmap`` of its own.

Only glibc has ``malloc_trim``; with another C library (musl, macOS) there is nothing to do.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("tusgate.memory")

INTERVAL_SECONDS = 0.25  # between two looks at the resident size

Trim = Callable[[], Awaitable[None]]


def trimmer(above: int | None) -> Trim | None:
    """A round of the job, or None where there is no job: no limit (``above`` None), or a C
    library that cannot give memory back. The round runs on the event loop: a call took 0.7 ms
    at the peak above, about what a thread hop waits."""
    malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if above is None or malloc_trim is None:
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int

    async def trim() -> None:
        if resident() > above:
            malloc_trim(0)

    return trim


def resident() -> int:
    """The process's resident size in bytes."""
    pages = int(Path("/proc/self/statm").read_bytes().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")
