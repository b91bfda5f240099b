"""The embedded database: SQLite through ``databases``, with writers taking turns.

SQLite lets one connection write at a time, and ``databases`` gives every task a connection of
its own. Left to itself, a second writer sleeps in SQLite's busy handler, and a transaction that
read first and then writes fails at once with "database is locked" when another connection wrote
meanwhile (its snapshot is stale: no waiting helps). The benchmark (bench/RESULTS.md) got such
503s for a few of 400 concurrent POSTs. So writes — a bare ``execute`` and a whole transaction —
take turns on an asyncio lock first, and so do statements that write through ``fetch_*``
(``UPDATE … RETURNING``): writers wait in the event loop, in order, and SQLite never
sees two of them from this process. The task holding the turn may write again (nested
transactions, savepoints). Reads go on beside the writer, as WAL allows. Another process on
the same file (a ``sweep`` beside the gateway) is still covered by SQLite's busy timeout.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from app.db.backends import Database, Transaction


class _Turn:
    """One writer at a time; the task holding the turn may take it again."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self._depth = 0

    async def take(self) -> None:
        task = asyncio.current_task()
        if task is None or self._holder is not task:
            await self._lock.acquire()
            self._holder = task
        self._depth += 1

    def give_back(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._holder = None
            self._lock.release()

    async def __aenter__(self) -> None:
        await self.take()

    async def __aexit__(self, *exc_info: object) -> None:
        self.give_back()


class _TakingTurns(Transaction):
    def __init__(self, turn: _Turn, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turn = turn

    async def __aenter__(self) -> Transaction:
        await self._turn.take()
        try:
            await super().__aenter__()
        except BaseException:
            self._turn.give_back()
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await super().__aexit__(*exc_info)
        finally:
            self._turn.give_back()


class SQLiteDatabase(Database):
    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._turn = _Turn()

    async def execute(self, query: Any, values: dict[str, Any] | None = None) -> Any:
        async with self._turn:
            return await super().execute(query, values)

    async def execute_many(self, query: Any, values: list[dict[str, Any]]) -> None:
        async with self._turn:
            await super().execute_many(query, values)

    async def fetch_one(self, query: Any, values: dict[str, Any] | None = None) -> Any:
        async with self._turn_if_writing(query):
            return await super().fetch_one(query, values)

    async def fetch_all(self, query: Any, values: dict[str, Any] | None = None) -> Any:
        async with self._turn_if_writing(query):
            return await super().fetch_all(query, values)

    async def fetch_val(
        self, query: Any, values: dict[str, Any] | None = None, column: Any = 0
    ) -> Any:
        async with self._turn_if_writing(query):
            return await super().fetch_val(query, values, column)

    def transaction(self, *, force_rollback: bool = False, **kwargs: Any) -> Transaction:
        return _TakingTurns(self._turn, self.connection, force_rollback, **kwargs)

    def _turn_if_writing(self, query: Any) -> AbstractAsyncContextManager[None]:
        """An ``UPDATE … RETURNING`` comes through ``fetch_*``: outside the turn it waited in
        SQLite's busy handler, which neither queues nor wakes in order, and 31 of 400 uploads'
        PATCHes got 503 "database is locked" after its 30 s (bench/RESULTS.md)."""
        return self._turn if _writes(query) else nullcontext()


def _writes(query: Any) -> bool:
    if isinstance(query, str):
        return query.lstrip()[:7].upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))
    return bool(getattr(query, "is_dml", False))
