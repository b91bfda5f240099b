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
from functools import partial
from types import TracebackType
from typing import Any, TypeVar, cast

import aiosqlite
import anyio
import databases
from databases.backends import postgres, sqlite
from databases.backends.common.records import Record, Row, create_column_maps
from databases.backends.sqlite import CompilationContext
from databases.core import DatabaseURL
from sqlalchemy.engine.cursor import CursorResultMetaData
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from app.db.compiled import Compilations

# Open at most, kept open between queries. A writer takes its turn before its connection
# (``embedded.py``) and readers need no turn, so a connection always comes free.
SQLITE_CONNECTIONS = 16
# A COMMIT or ROLLBACK runs to its end even when its task is cancelled, within this: past
# SQLite's busy timeout (another process writing), so that a slow one still gets its answer.
TRANSACTION_END_SECONDS = 60.0


class _PostgresShape:
    """A statement shape as asyncpg runs it: numbered SQL, the order of its arguments, and the
    maps its rows are read by (stock makes them per query, rendering every column's name)."""

    def __init__(self, compiled: SQLCompiler) -> None:
        keys = sorted(compiled.params)  # stock's numbering: by the parameters' names
        self.sql = compiled.string % {key: f"${number}" for number, key in enumerate(keys, 1)}
        self.binds = _binds(compiled, keys)
        self.columns = compiled._result_columns
        self.maps = create_column_maps(self.columns)


class PostgresConnection(postgres.PostgresConnection):
    compilations: Compilations[_PostgresShape]

    def _compile(self, query: ClauseElement) -> Any:
        sql, args, columns, _ = self._prepare(query)
        return sql, args, columns

    def _prepare(self, query: ClauseElement) -> tuple[str, list[Any], Any, Any]:
        found = self.compilations.find(query)
        if found is None:
            sql, args, columns = super()._compile(query)
            return sql, args, columns, create_column_maps(columns)
        shape, values = found
        return shape.sql, _arguments(shape.binds, values), shape.columns, shape.maps

    async def fetch_all(self, query: ClauseElement) -> list[Any]:
        assert self._connection is not None, "Connection is not acquired"
        sql, args, columns, maps = self._prepare(query)
        rows = await self._connection.fetch(sql, *args)
        return [Record(row, columns, self._dialect, maps) for row in rows]

    async def fetch_one(self, query: ClauseElement) -> Any:
        assert self._connection is not None, "Connection is not acquired"
        sql, args, columns, maps = self._prepare(query)
        row = await self._connection.fetchrow(sql, *args)
        return None if row is None else Record(row, columns, self._dialect, maps)


class PostgresBackend(postgres.PostgresBackend):
    def __init__(self, database_url: DatabaseURL | str, **options: Any) -> None:
        super().__init__(database_url, **options)
        self._compilations = Compilations(self._dialect, _PostgresShape)

    def connection(self) -> PostgresConnection:
        connection = PostgresConnection(self, self._dialect)
        connection.compilations = self._compilations
        return connection


T = TypeVar("T")
Rows = tuple[list[tuple[Any, ...]], Any]  # the rows and the cursor's description
Binds = list[tuple[str, Callable[[Any], Any] | None]]  # each argument's name and converter


class _SQLiteShape:
    """A statement shape as SQLite runs it, and how to read its rows: what stock derives
    from the compilation for every query, here once per shape (SQLAlchemy's own result cache
    keeps the rows' metadata by compiled statement too)."""

    def __init__(self, dialect: Any, sql: str, binds: Binds, columns: Any, context: Any) -> None:
        self.dialect = dialect
        self.sql = sql
        self.binds = binds
        self.columns = columns
        self.context = context
        self._maps: Any = None
        self._metadata: tuple[Any, Any] | None = None  # the description it was made for

    @classmethod
    def derive(cls, dialect: Any, compiled: SQLCompiler) -> _SQLiteShape:
        context = dialect.execution_ctx_cls()
        context.dialect = dialect
        context.result_column_struct = (
            compiled._result_columns,
            compiled._ordered_columns,
            compiled._textual_ordered_columns,
            compiled._ad_hoc_textual,
            compiled._loose_column_name_matching,
        )
        binds = _binds(compiled, compiled.positiontup or [])
        columns = compiled._result_columns
        return cls(dialect, compiled.string, binds, columns, CompilationContext(context))

    def records(self, rows: list[tuple[Any, ...]], description: Any) -> list[Record]:
        if not rows:
            return []
        if self._maps is None:
            self._maps = create_column_maps(self.columns)
        if self._metadata is None or self._metadata[0] != description:
            self._metadata = (description, CursorResultMetaData(self.context, description))
        metadata: Any = self._metadata[1]
        return [
            Record(
                Row(metadata, metadata._processors, metadata._keymap, row),
                self.columns,
                self.dialect,
                self._maps,
            )
            for row in rows
        ]


class SQLiteConnection(sqlite.SQLiteConnection):
    """Each query in one trip to the connection's thread (``_execute``, aiosqlite's own way to
    run a function there): the statement, its rows and the cursor's closing together."""

    compilations: Compilations[_SQLiteShape]

    def _compile(self, query: ClauseElement) -> Any:
        shape, args = self._prepare(query)
        return shape.sql, args, shape.columns, shape.context

    def _prepare(self, query: ClauseElement) -> tuple[_SQLiteShape, list[Any]]:
        found = self.compilations.find(query)
        if found is None:
            sql, args, columns, context = cast(Any, super()._compile(query))
            return _SQLiteShape(self._dialect, sql, [], columns, context), args
        shape, values = found
        return shape, _arguments(shape.binds, values)

    async def fetch_all(self, query: ClauseElement) -> list[Any]:
        shape, args = self._prepare(query)
        rows, description = await self._in_thread(_fetch, shape.sql, args, None)
        return shape.records(rows, description)

    async def fetch_one(self, query: ClauseElement) -> Any:
        shape, args = self._prepare(query)
        rows, description = await self._in_thread(_fetch, shape.sql, args, 1)
        return next(iter(shape.records(rows, description)), None)

    async def execute(self, query: ClauseElement) -> Any:
        """The new row's id for an INSERT, else the rows changed. (Stock answers any statement
        with the id of the connection's last INSERT, if it ever made one.)"""
        shape, args = self._prepare(query)
        last_row_id, row_count = await self._in_thread(_execute, shape.sql, args)
        return last_row_id if shape.sql.lstrip()[:6].upper() == "INSERT" else row_count

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        assert self._connection is not None, "Connection is not acquired"
        run: Callable[..., Awaitable[T]] = self._connection._execute
        return await run(function, self._connection._conn, *args)


def _binds(compiled: SQLCompiler, keys: Sequence[str]) -> Binds:
    processors: dict[str, Any] = dict(compiled._bind_processors)
    return [(key, processors.get(key)) for key in keys]


def _arguments(binds: Binds, values: dict[str, Any]) -> list[Any]:
    return [values[key] if convert is None else convert(values[key]) for key, convert in binds]


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
        self._compilations = Compilations(
            self._dialect, partial(_SQLiteShape.derive, self._dialect)
        )

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
