"""Worker threads for the hot path's blocking work: a PATCH batch's write and hash.

anyio's ``to_thread.run_sync`` suits the occasional blocking call. Called for every 256 KiB
batch of 400 uploads at once, its bookkeeping per call (a capacity limiter, two cancel scopes,
run variables) took 8 % of the event loop, and every result woke the loop through its
self-pipe (bench/RESULTS.md, optimisation 25). Here a fixed set of threads takes jobs from one
queue, and results come back in groups: a worker wakes the loop only when no result before its
own is still waiting to be collected.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
THREADS = 8  # 32 held 16 MiB more at 400 uploads, and ran no faster (bench/RESULTS.md)


class _Job(Generic[T]):
    __slots__ = ("call", "error", "future", "result")

    def __init__(self, call: Callable[[], T], future: asyncio.Future[T]) -> None:
        self.call = call
        self.future = future
        self.result: Any = None
        self.error: Exception | None = None


class Workers:
    """Threads started at the first call, serving the event loop of that call."""

    def __init__(self, threads: int = THREADS) -> None:
        self._count = threads
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._done: deque[_Job[Any]] = deque()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._collecting = False  # a collection is scheduled on the loop

    async def run(self, call: Callable[[], T]) -> T:
        """``call()`` in a worker thread. A cancelled caller still waits for it to return:
        what it works on (a writer's file) stays in use until then."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._start(loop)
        assert self._loop is loop, "workers serve the event loop they were started from"
        job: _Job[T] = _Job(call, loop.create_future())
        self._jobs.put(job)
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            while not job.future.done():
                try:
                    await asyncio.shield(job.future)
                except asyncio.CancelledError:
                    continue
            raise

    def close(self) -> None:
        """Stop the threads once the jobs queued before have run."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._loop = None
        self._collecting = False  # a collection scheduled on the old loop never runs now

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for number in range(self._count):
            thread = threading.Thread(target=self._work, name=f"tusgate-worker-{number}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job.result = job.call()
            except Exception as exc:
                job.error = exc
            self._done.append(job)
            # The loop sets the flag back before it empties the queue of results: a result
            # appended after that is either collected then or finds the flag down.
            if not self._collecting:
                self._collecting = True
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._collect)

    def _collect(self) -> None:
        self._collecting = False
        while self._done:
            job = self._done.popleft()
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
