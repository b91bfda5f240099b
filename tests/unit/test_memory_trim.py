"""The memory job (app/jobs/memory.py) gives back what glibc kept of freed body-sized blocks.

In a fresh interpreter, so that the heap holds only what the test put there: blocks of 256 KiB
(a socket read's size), from the heap once one such block was freed (glibc raises its mmap
threshold then, as it does in the gateway's first seconds), each followed by a small block that
stays alive and pins it inside the heap, as the gateway's long-lived objects do. Freeing the big
ones leaves the resident size where it was until the job's round.
"""

from __future__ import annotations

import subprocess
import sys

MiB = 1024 * 1024

SCRIPT = """
import asyncio
from app.jobs import memory

def resident():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

trim = memory.trimmer()
bytes(256 * 1024)  # freed at once: glibc then serves such sizes from its heap, not by mmap
big, pins = [], []
for _ in range(400):
    big.append(b"x" * (256 * 1024))  # written: its pages are resident
    pins.append(bytearray(4096))
big.clear()
before = resident()
asyncio.run(trim())
print(before, resident())
"""


def test_a_round_gives_freed_blocks_back_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout
    before, after = (int(field) for field in out.split())
    assert before - after > 80 * MiB  # of the 100 MiB freed
