"""The metadata database: PostgreSQL (asyncpg) in production, SQLite (aiosqlite) embedded.

``connect`` is the one place that knows the difference between the two at connection time; the
queries in ``uploads.py`` and ``files.py`` are SQLAlchemy Core and run unchanged on both.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import anyio
import asyncpg
import sqlalchemy as sa
from databases import Database
from sqlalchemy.dialects import postgresql, sqlite

from app.db.backends import Database as TunedDatabase
from app.db.embedded import SQLiteDatabase

# What the drivers raise when the database may be unreachable (``unreachable`` decides).
DRIVER_ERRORS = (
    OSError,  # refused, reset, timed out
    sqlite3.OperationalError,  # "database is locked" — or a wrong query
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,  # a connection of the pool that died
)
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
WAL_ATTEMPTS = 100


async def connect(url: str) -> Database:
    if url.startswith("sqlite"):
        # A connection per task; writers take turns in the event loop (``embedded.py``), the
        # busy timeout covers another process on the same file, and WAL lets readers proceed.
        db: Database = SQLiteDatabase(url, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
        await db.connect()
        await _use_wal(db)
    else:
        db = TunedDatabase(url, min_size=1, max_size=20)
        await db.connect()
    return db


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be used right now (a 503 to retry), rather than
    that the gateway asked something wrong (a bug: a 500)."""
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "unable to open" in str(exc)
    return isinstance(exc, DRIVER_ERRORS)


def full(exc: BaseException) -> bool:
    """Whether ``exc`` says the database's disk is full: nothing of the write happened, and the
    request may succeed once room is made (a 507, as for a full store)."""
    if isinstance(exc, sqlite3.OperationalError):
        return "full" in str(exc)  # SQLITE_FULL: "database or disk is full"
    return isinstance(exc, asyncpg.exceptions.DiskFullError)


def is_sqlite(db: Database) -> bool:
    return db.url.dialect == "sqlite"


def upsert(db: Database, table: sa.Table) -> Any:
    """An INSERT that takes ``on_conflict_do_nothing``/``_do_update``, in the database's dialect."""
    dialect = postgresql if db.url.dialect == "postgresql" else sqlite
    return dialect.insert(table)


async def _use_wal(db: Database) -> None:
    """Switch SQLite to write-ahead logging. Switching needs the database to itself, and SQLite
    refuses at once rather than waiting when another process is starting on the same new file
    at that moment: try again for a while."""
    for _ in range(WAL_ATTEMPTS - 1):
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            await anyio.sleep(0.1)
    await db.execute("PRAGMA journal_mode=WAL")
