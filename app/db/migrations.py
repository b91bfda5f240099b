"""Versioned schema migrations, applied by ``python -m app migrate`` and at start-up.

Each migration is frozen once released: a change to the schema is a new entry at the end, never
an edit of an old one. The SQL is written once for both databases; ``{timestamp}`` and
``{serial}`` stand for the types that differ. Instances that start together serialise on an
advisory lock (PostgreSQL) or on SQLite's single writer, so a migration is applied exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from databases import Database

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "uploads and the file catalogue",
        [
            """CREATE TABLE uploads (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                state TEXT NOT NULL,
                upload_length BIGINT,
                upload_offset BIGINT NOT NULL,
                metadata TEXT NOT NULL,
                filename TEXT,
                content_type TEXT,
                concat TEXT,
                partials TEXT,
                location TEXT NOT NULL,
                store_key TEXT,
                store_state TEXT NOT NULL,
                sha256 TEXT,
                created_at {timestamp} NOT NULL,
                expires_at {timestamp},
                completed_at {timestamp}
            )""",
            "CREATE INDEX uploads_owner ON uploads (owner)",
            "CREATE INDEX uploads_state_expires ON uploads (state, expires_at)",
            """CREATE TABLE files (
                sha256 TEXT PRIMARY KEY,
                size BIGINT NOT NULL,
                created_at {timestamp} NOT NULL
            )""",
            """CREATE TABLE file_copies (
                sha256 TEXT NOT NULL REFERENCES files (sha256),
                location TEXT NOT NULL,
                store_key TEXT NOT NULL,
                state TEXT NOT NULL,
                created_at {timestamp} NOT NULL,
                PRIMARY KEY (sha256, location)
            )""",
            """CREATE TABLE file_owners (
                sha256 TEXT NOT NULL REFERENCES files (sha256),
                owner TEXT NOT NULL,
                name TEXT,
                content_type TEXT,
                upload_id TEXT,
                created_at {timestamp} NOT NULL,
                expires_at {timestamp} NOT NULL,
                legal_hold BOOLEAN NOT NULL,
                PRIMARY KEY (sha256, owner)
            )""",
            "CREATE INDEX file_owners_owner ON file_owners (owner)",
            "CREATE INDEX file_owners_expires ON file_owners (expires_at)",
        ],
    ),
    (
        2,
        "storage quotas, audit trail, crash-safe physical deletion",
        [
            "ALTER TABLE uploads ADD COLUMN reserved BIGINT NOT NULL DEFAULT 0",
            """CREATE TABLE quotas (
                owner TEXT PRIMARY KEY,
                max_bytes BIGINT,
                max_uploads INTEGER,
                max_file_size BIGINT,
                updated_at {timestamp}
            )""",
            """CREATE TABLE audit (
                id {serial},
                at {timestamp} NOT NULL,
                action TEXT NOT NULL,
                actor TEXT NOT NULL,
                owner TEXT,
                upload_id TEXT,
                sha256 TEXT,
                client TEXT,
                detail TEXT
            )""",
            "CREATE INDEX audit_at ON audit (at)",
            "CREATE INDEX audit_actor ON audit (actor)",
            "CREATE INDEX audit_owner ON audit (owner)",
            "CREATE INDEX audit_sha256 ON audit (sha256)",
            """CREATE TABLE pending_deletions (
                location TEXT NOT NULL,
                store_key TEXT NOT NULL,
                created_at {timestamp} NOT NULL,
                PRIMARY KEY (location, store_key)
            )""",
        ],
    ),
    (
        3,
        "download quotas, the restore cache",
        [
            "ALTER TABLE quotas ADD COLUMN max_downloads BIGINT",
            "ALTER TABLE quotas ADD COLUMN max_concurrent_downloads INTEGER",
            "ALTER TABLE quotas ADD COLUMN max_download_bytes BIGINT",
            """CREATE TABLE cache_entries (
                sha256 TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                source TEXT NOT NULL,
                store_key TEXT NOT NULL,
                size BIGINT NOT NULL,
                claimed_at {timestamp} NOT NULL,
                expires_at {timestamp},
                last_read_at {timestamp}
            )""",
            "CREATE INDEX cache_entries_read ON cache_entries (state, last_read_at)",
        ],
    ),
    (
        4,
        "the digest a resumable upload must match",
        ["ALTER TABLE uploads ADD COLUMN expected_sha256 TEXT"],
    ),
]

_TYPES = {
    "postgresql": {"timestamp": "TIMESTAMP WITH TIME ZONE", "serial": "BIGSERIAL PRIMARY KEY"},
    "sqlite": {"timestamp": "TIMESTAMP", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
}
_CREATE_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)
_LOCK_ID = 0x7475_7367  # "tusg": the advisory lock that serialises migrating instances


async def migrate(db: Database) -> list[int]:
    """Apply the migrations this database lacks; returns the versions applied now."""
    dialect = db.url.dialect
    types = _TYPES[dialect]
    applied_now: list[int] = []
    if dialect == "sqlite":
        await db.execute(_CREATE_VERSIONS)  # on its own: SQLite serialises it
    async with db.transaction():
        if dialect == "postgresql":
            # Under the lock: concurrent CREATE ... IF NOT EXISTS can collide on PostgreSQL.
            await db.execute(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
            await db.execute(_CREATE_VERSIONS)
        else:
            # Take SQLite's write lock first: two migrators that read first would deadlock
            # upgrading their read locks, and SQLite fails one at once instead of waiting.
            await db.execute("DELETE FROM schema_migrations WHERE 1 = 0")
        rows = await db.fetch_all("SELECT version FROM schema_migrations")
        done = {row[0] for row in rows}
        for version, name, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                await db.execute(statement.format(**types))
            await db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at)"
                " VALUES (:version, :name, :applied_at)",
                {"version": version, "name": name, "applied_at": datetime.now(UTC).isoformat()},
            )
            applied_now.append(version)
    return applied_now
