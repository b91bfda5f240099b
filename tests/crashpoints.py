"""A gateway (or a sweep) that SIGKILLs itself at a chosen point: the crash tests' launcher.

``python -m tests.crashpoints serve|sweep ...`` is exactly ``python -m app serve|sweep ...``,
except that it first arms the point named by ``TUSGATE_TEST_CRASH_AT`` (see ``CrashPoint``):
the Nth call of that coroutine function, counted in this process, kills the process with
SIGKILL, just before the call starts or just after it returned. A line on stderr names the
point first, so a test can tell its own kill from a crash. Production code has no hook for
this: the function is replaced in its module or class before the app starts.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

ENV = "TUSGATE_TEST_CRASH_AT"
MARK = "crashpoint reached:"
WHEN = ("before", "after")


@dataclass(frozen=True)
class CrashPoint:
    """``module:attribute[.method]:before|after:N``, e.g.
    ``app.storage.s3.writer:S3Writer.commit:after:3`` (the third commit, once it returned)."""

    module: str
    path: str
    when: str
    nth: int

    def __str__(self) -> str:
        return f"{self.module}:{self.path}:{self.when}:{self.nth}"

    @property
    def mark(self) -> str:
        """The line a process writes as it dies here."""
        return f"{MARK} {self}"

    @classmethod
    def parse(cls, text: str) -> CrashPoint:
        module, path, when, nth = text.split(":")
        if when not in WHEN or int(nth) < 1:
            raise ValueError(f"bad crash point {text!r}: when is before|after, N counts from 1")
        return cls(module, path, when, int(nth))


def die(point: CrashPoint) -> None:
    sys.stderr.write(f"{point.mark}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: CrashPoint) -> None:
    """Replace the function at ``point`` by one that counts its calls and dies on the Nth."""
    owner: Any = importlib.import_module(point.module)
    *parents, name = point.path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original: Callable[..., Awaitable[Any]] = getattr(owner, name)
    if not inspect.iscoroutinefunction(original):
        raise TypeError(f"{point}: only coroutine functions can be crash points")
    calls = 0

    @functools.wraps(original)
    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        chosen = calls == point.nth  # other calls may run while this one awaits
        if chosen and point.when == "before":
            die(point)
        result = await original(*args, **kwargs)
        if chosen:
            die(point)
        return result

    setattr(owner, name, counted)


def main() -> int:
    if spec := os.environ.get(ENV):
        arm(CrashPoint.parse(spec))
    from app.__main__ import main as app_main

    return app_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
