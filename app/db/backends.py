"""The ``databases`` backends the gateway runs on: the stock ones, made cheaper per query.

Both keep compiled statements (``compiled.py``). The SQLite one also keeps connections open:
stock, every query outside a transaction opens the database file and starts an aiosqlite thread
for it, and closes both afterwards — a thread start and a schema read per query.
"""

from __future__ import annotations

from typing import Any

import aiosqlite
import databases
from databases.backends import postgres, sqlite
from databases.core import DatabaseURL
from sqlalchemy.sql import ClauseElement

from app.db.compiled import Compilations

IDLE_SQLITE_CONNECTIONS = 16  # kept open between queries; more are opened when needed


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


class SQLiteConnection(sqlite.SQLiteConnection):
    compilations: Compilations

    def _compile(self, query: ClauseElement) -> Any:
        return super()._compile(self.compilations.prepare(query))


class SQLitePool(sqlite.SQLitePool):
    """Connections kept open once released, up to ``IDLE_SQLITE_CONNECTIONS``."""

    def __init__(self, url: DatabaseURL, **options: Any) -> None:
        super().__init__(url, **options)
        self._idle: list[aiosqlite.Connection] = []

    async def acquire(self) -> aiosqlite.Connection:
        if self._idle:
            return self._idle.pop()
        return await super().acquire()

    async def release(self, connection: aiosqlite.Connection) -> None:
        # One left inside a transaction (a rollback that failed) is not handed out again.
        if len(self._idle) < IDLE_SQLITE_CONNECTIONS and not connection.in_transaction:
            self._idle.append(connection)
        else:
            await super().release(connection)

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


class Database(databases.Database):
    """``databases.Database`` on the backends above."""

    def _get_backend(self) -> str:
        return BACKENDS[self.url.dialect]


BACKENDS = {
    "postgresql": f"{__name__}:PostgresBackend",
    "postgres": f"{__name__}:PostgresBackend",
    "sqlite": f"{__name__}:SQLiteBackend",
}
