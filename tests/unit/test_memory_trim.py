"""The memory job (app/jobs/memory.py) gives back what glibc kept of freed body-sized blocks.

In a fresh interpreter, so that the heap holds only what the test put there: blocks of 256 KiB
(a socket read's size), from the heap once one such block was freed (glibc raises its mmap
threshold then, as it does in the gateway's first seconds), each followed by a small block that
stays alive and pins it inside the heap, as the gateway's long-lived objects do. Freeing the big
ones leaves the resident size where it was until the job's round, which gives them back only
once the process is past its limit.
"""

from __future__ import annotations

import subprocess
import sys

MiB = 1024 * 1024

SCRIPT = """
import asyncio
import sys
from app.jobs.memory import resident, trimmer

bytes(256 * 1024)  # freed at once: glibc then serves such sizes from its heap, not by mmap
big, pins = [], []
for _ in range(400):
    big.append(b"x" * (256 * 1024))  # written: its pages are resident
    pins.append(bytearray(4096))
big.clear()
before = resident()
asyncio.run(trimmer(above=before + int(sys.argv[1]))())
print(before, resident())
"""


def _trimmed(headroom: int) -> int:
    """What a round gives back when the limit is ``headroom`` above the resident size."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(headroom)], capture_output=True, text=True, check=True
    ).stdout
    before, after = (int(field) for field in out.split())
    return before - after


def test_past_the_limit_a_round_gives_freed_blocks_back_to_the_system() -> None:
    assert _trimmed(-1) > 80 * MiB  # of the 100 MiB freed


def test_below_the_limit_freed_blocks_are_kept_for_reuse() -> None:
    assert _trimmed(1 * MiB) < 1 * MiB
