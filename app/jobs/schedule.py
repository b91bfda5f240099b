"""Running a background job every so often, for as long as the gateway runs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio


async def repeat(job: Callable[[], Awaitable[Any]], seconds: float, log: logging.Logger) -> None:
    """Run ``job`` now and then every ``seconds``; a round that fails is logged and the next
    one tries again. A round's report (a dataclass of counts) is logged unless all are zero."""
    while True:
        try:
            report = await job()
            if report != type(report)():
                log.info("%s", report)
        except Exception:
            log.exception("round failed; trying again next round")
        await anyio.sleep(seconds)
