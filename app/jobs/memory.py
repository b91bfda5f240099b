"""Giving the memory freed by request bodies back to the system, every so often.

Under many stalled uploads (400 at once on a slow S3) the process allocates and frees blocks of
64 KiB to 1 MiB all the time: socket reads of up to 256 KiB, bodies joined by the ASGI server,
batches of ``write_batch_size``. glibc's allocator keeps what is freed in its heaps for reuse,
so the resident size grows with its holes: 313 to 335 MiB at the peak where the bytes alive were
about half of that. ``malloc_trim(0)`` hands the free pages inside the heaps back: every
0.25 s it took 0.7 ms and the peak fell to 263 to 269 MiB at the same throughput and CPU
(bench/RESULTS.md, optimisation 23). glibc's ``MALLOC_MMAP_THRESHOLD_`` got as low, but at a
fifth more CPU: every such block became an ``mmap`` of its own.

Only glibc has ``malloc_trim``; with another C library (musl, macOS) there is nothing to do.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("tusgate.memory")

Trim = Callable[[], Awaitable[None]]


def trimmer() -> Trim | None:
    """A round of the job, or None where the C library cannot give memory back. It runs on the
    event loop: 0.7 ms at the peak above, about what a thread hop would cost in wake-ups."""
    malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if malloc_trim is None:
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int

    async def trim() -> None:
        malloc_trim(0)

    return trim
