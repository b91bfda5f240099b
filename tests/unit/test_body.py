"""Reading a body that can be told to stop (app/tus/body.py), on asyncio's own timeout."""

from __future__ import annotations

import asyncio

import pytest

from app.tus.body import BodyReader, End

pytestmark = pytest.mark.anyio


def _silent(idle_timeout: float = 0) -> BodyReader:
    """A reader whose client never sends anything."""
    never = asyncio.Event()

    async def receive() -> dict[str, object]:
        await never.wait()
        return {"type": "http.disconnect"}

    return BodyReader(receive, idle_timeout)


async def _read(reader: BodyReader) -> list[bytes]:
    return [chunk async for chunk in reader.chunks()]


async def test_an_idle_client_ends_the_read_as_idle() -> None:
    reader = _silent()
    assert await _read(reader) == []
    assert reader.end is End.IDLE


async def test_stop_as_the_idle_timeout_fires_is_harmless() -> None:
    """stop() called between the timeout firing and the reader waking (a lock's release request
    or the shutdown's drain): it must neither raise in its caller nor lose the stop."""
    reader = _silent()
    failures: list[BaseException] = []

    def stop_now() -> None:
        try:
            reader.stop()
        except Exception as exc:  # what the caller would have seen
            failures.append(exc)

    task = asyncio.create_task(_read(reader))
    await asyncio.sleep(0)  # the reader enters its timeout, whose expiry is now queued
    asyncio.get_running_loop().call_soon(stop_now)  # runs after the expiry, before the reader
    assert await task == []
    assert failures == []
    assert reader.end is End.STOPPED


async def test_stop_while_waiting_ends_the_read_as_stopped() -> None:
    reader = _silent(idle_timeout=60)
    task = asyncio.create_task(_read(reader))
    await asyncio.sleep(0)  # the reader waits for the client
    reader.stop()
    assert await task == []
    assert reader.end is End.STOPPED
