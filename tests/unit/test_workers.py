"""The hot path's worker threads (app/workers.py): every caller gets its own result or error,
however the results are grouped on their way back, and a cancelled caller waits for its call."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.workers import Workers

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the gateway always serves on asyncio


def _answer(number: int) -> int:
    if number % 7 == 0:
        raise ValueError(f"no {number}")
    return number * 2


async def test_many_calls_at_once_each_get_their_own_result_or_error() -> None:
    workers = Workers(threads=4)
    try:
        numbers = range(1, 501)
        outcomes = await asyncio.gather(
            *(workers.run(lambda n=n: _answer(n)) for n in numbers), return_exceptions=True
        )
        for number, outcome in zip(numbers, outcomes, strict=True):
            if number % 7 == 0:
                assert isinstance(outcome, ValueError)
                assert str(outcome) == f"no {number}"
            else:
                assert outcome == number * 2
    finally:
        workers.close()


async def test_the_calls_run_in_the_workers_threads() -> None:
    workers = Workers(threads=2)
    try:
        names = await asyncio.gather(*(workers.run(threading.current_thread) for _ in range(20)))
        assert {thread.name for thread in names} <= {"tusgate-worker-0", "tusgate-worker-1"}
    finally:
        workers.close()
    assert not any(thread.is_alive() for thread in names)


async def test_a_cancelled_caller_waits_until_its_call_has_returned() -> None:
    """What the call works on (a writer's file) is closed once the caller has unwound: it must
    not unwind while the call still runs."""
    workers = Workers(threads=1)
    started, release, returned = threading.Event(), threading.Event(), threading.Event()

    def call() -> None:
        started.set()
        release.wait()
        returned.set()

    try:
        task = asyncio.ensure_future(workers.run(call))
        await asyncio.get_running_loop().run_in_executor(None, started.wait)
        task.cancel()
        for _ in range(5):  # let the cancellation reach the task, and the task ask again
            await asyncio.sleep(0)
        task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert returned.is_set()
    finally:
        release.set()
        workers.close()
