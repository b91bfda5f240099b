"""The ``databases`` backends the gateway runs on: the stock ones, made cheaper per query, and
transactions that end whatever happens to their task.

Both backends keep compiled statements (``compiled.py``). The SQLite one also keeps connections
open: stock, every query outside a transaction opens the database file and starts an aiosqlite
thread for it, and closes both afterwards — a thread start and a schema read per query. Like
PostgreSQL's pool it opens at most a bound, and a query waits for a free connection: when only
some were kept and more opened as needed, 400 downloads at once started 60 threads a second
(bench/RESULTS.md, optimisation 22). And it runs each query in one trip to the connection's
thread, where stock takes three (execute, fetch, close the cursor), each a wake-up of the event
loop and a turn at the GIL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite
import anyio
import databases
from databases.backends import postgres, sqlite
from databases.backends.common.records import Record, Row, create_column_maps
from databases.core import DatabaseURL
from sqlalchemy.engine.cursor import CursorResultMetaData
from sqlalchemy.sql import ClauseElement

from app.db.compiled import Compilations

# Open at most, kept open between queries. A writer takes its turn before its connection
# (``embedded.py``) and readers need no turn, so a connection always comes free.
SQLITE_CONNECTIONS = 16
# A COMMIT or ROLLBACK runs to its end even when its task is cancelled, within this: past
# SQLite's busy timeout (another process writing), so that a slow one still gets its answer.
TRANSACTION_END_SECONDS = 60.0


class PostgresConnection(postgres.PostgresConnection):
    compilations: Compilations

    def _compile(self, query: ClauseElement) -> Any:
        return super()._compile(self.compilations.prepare(query))


class PostgresBackend(postgres.PostgresBackend):
    def __init__(self, database_url: DatabaseURL | str, **options: Any) -> None:
        super().__init__(database_url, **options)
        self._compilations = Compilations(self._dialect)

    def connection(self) -> PostgresConnection:
        connection = PostgresConnection(self, self._dialect)
        connection.compilations = self._compilations
        return connection


T = TypeVar("T")
Rows = tuple[list[tuple[Any, ...]], Any]  # the rows and the cursor's description


class SQLiteConnection(sqlite.SQLiteConnection):
    """Each query in one trip to the connection's thread (``_execute``, aiosqlite's own way to
    run a function there): the statement, its rows and the cursor's closing together."""

    compilations: Compilations

    def _compile(self, query: ClauseElement) -> Any:
        return super()._compile(self.compilations.prepare(query))

    async def fetch_all(self, query: ClauseElement) -> list[Any]:
        sql, args, columns, context = self._compile(query)
        rows, description = await self._in_thread(_fetch, sql, args, None)
        return self._records(rows, description, columns, context)

    async def fetch_one(self, query: ClauseElement) -> Any:
        sql, args, columns, context = self._compile(query)
        rows, description = await self._in_thread(_fetch, sql, args, 1)
        return next(iter(self._records(rows, description, columns, context)), None)

    async def execute(self, query: ClauseElement) -> Any:
        """The new row's id for an INSERT, else the rows changed. (Stock answers any statement
        with the id of the connection's last INSERT, if it ever made one.)"""
        sql, args, _, _ = self._compile(query)
        last_row_id, row_count = await self._in_thread(_execute, sql, args)
        return last_row_id if sql.lstrip()[:6].upper() == "INSERT" else row_count

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        assert self._connection is not None, "Connection is not acquired"
        run: Callable[..., Awaitable[T]] = self._connection._execute
        return await run(function, self._connection._conn, *args)

    def _records(
        self, rows: list[tuple[Any, ...]], description: Any, columns: Any, context: Any
    ) -> list[Record]:
        if not rows:
            return []
        maps = create_column_maps(columns)
        metadata: Any = CursorResultMetaData(context, description)
        return [
            Record(
                Row(metadata, metadata._processors, metadata._keymap, row),
                columns,
                self._dialect,
                maps,
            )
            for row in rows
        ]


def _fetch(connection: sqlite3.Connection, sql: str, args: Sequence[Any], size: int | None) -> Rows:
    cursor = connection.execute(sql, args)
    try:
        rows = cursor.fetchall() if size is None else cursor.fetchmany(size)
        return rows, cursor.description
    finally:
        cursor.close()


def _execute(
    connection: sqlite3.Connection, sql: str, args: Sequence[Any]
) -> tuple[int | None, int]:
    cursor = connection.execute(sql, args)
    try:
        return cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


class SQLitePool(sqlite.SQLitePool):
    """At most ``SQLITE_CONNECTIONS`` open, kept open once released."""

    def __init__(self, url: DatabaseURL, **options: Any) -> None:
        super().__init__(url, **options)
        self._idle: list[aiosqlite.Connection] = []
        self._free = asyncio.Semaphore(SQLITE_CONNECTIONS)

    async def acquire(self) -> aiosqlite.Connection:
        await self._free.acquire()
        try:
            return self._idle.pop() if self._idle else await super().acquire()
        except BaseException:
            self._free.release()
            raise

    async def release(self, connection: aiosqlite.Connection) -> None:
        try:
            # One left inside a transaction (a rollback that failed) is not handed out again.
            if connection.in_transaction:
                await super().release(connection)
            else:
                self._idle.append(connection)
        finally:
            self._free.release()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await super().release(connection)


class SQLiteBackend(sqlite.SQLiteBackend):
    def __init__(self, database_url: DatabaseURL | str, **options: Any) -> None:
        super().__init__(database_url, **options)
        self._kept = SQLitePool(self._database_url, **self._options)
        self._pool = self._kept
        self._compilations = Compilations(self._dialect)

    async def disconnect(self) -> None:
        await self._kept.close()
        await super().disconnect()

    def connection(self) -> SQLiteConnection:
        connection = SQLiteConnection(self._pool, self._dialect)
        connection.compilations = self._compilations
        return connection


class Transaction(databases.core.Transaction):
    """A transaction whose COMMIT or ROLLBACK finishes even in a cancelled task, and whose
    connection is given back even when BEGIN, COMMIT or ROLLBACK fails.

    Stock, a cancelled task's ROLLBACK is cancelled too (anyio cancels every later await in a
    cancelled scope), and a failed BEGIN or COMMIT skips the release: the connection stays taken
    for good. PostgreSQL's pool shrank by one each time; on SQLite the connection's worker
    thread lived on and kept the process from exiting (``serve`` stopped while the sweeper was
    in a transaction hung until killed — tests/db/test_transactions.py).
    """

    async def start(self) -> Transaction:
        taken = self._connection._connection_counter
        try:
            await super().start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._give_back(taken)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        taken = self._connection._connection_counter - 1
        with anyio.fail_after(TRANSACTION_END_SECONDS, shield=True):
            try:
                await super().__aexit__(exc_type, exc_value, traceback)
            except BaseException:
                await self._give_back(taken)
                raise

    async def _give_back(self, taken: int) -> None:
        """Release the connection if the failed step left it taken. One left inside a
        transaction is closed (SQLite) or reset (PostgreSQL's pool) rather than reused as is."""
        if self._connection._connection_counter > taken:
            await self._connection.__aexit__()


class Database(databases.Database):
    """``databases.Database`` on the backends above, with the transactions above."""

    def _get_backend(self) -> str:
        return BACKENDS[self.url.dialect]

    def transaction(self, *, force_rollback: bool = False, **kwargs: Any) -> Transaction:
        return Transaction(self.connection, force_rollback, **kwargs)


BACKENDS = {
    "postgresql": f"{__name__}:PostgresBackend",
    "postgres": f"{__name__}:PostgresBackend",
    "sqlite": f"{__name__}:SQLiteBackend",
}
