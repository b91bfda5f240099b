"""The tables, as SQLAlchemy Core objects, for building queries.

They mirror what ``migrations.py`` creates; a test compares the two. Times are stored in UTC and
always come back timezone-aware, on SQLite as on PostgreSQL. JSON is kept as text so that both
databases return the same thing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(moment, datetime)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class JSONText(sa.types.TypeDecorator[Any]):
    impl = sa.Text()
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("upload_length", sa.BigInteger),
    sa.Column("upload_offset", sa.BigInteger, nullable=False),
    # Upload-Metadata exactly as received (validated), so HEAD echoes it byte for byte; the
    # decoded file name and type are kept apart for listings.
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("filename", sa.Text),
    sa.Column("content_type", sa.Text),
    sa.Column("concat", sa.Text),  # None, "partial" or "final"
    sa.Column("partials", JSONText),  # final uploads: ids of the partial uploads, in order
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("store_key", sa.Text),  # None once the bytes belong to a file or are gone
    sa.Column("store_state", JSONText, nullable=False),
    sa.Column("sha256", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("completed_at", UTCDateTime),
    # Bytes this upload counts against its owner's storage quota while unfinished: the length,
    # or for a deferred length what it holds plus what the PATCH in progress may add.
    sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
    # SHA-256 the client announced (Repr-Digest); a completed upload must match it
    sa.Column("expected_sha256", sa.Text),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

file_copies = sa.Table(
    "file_copies",
    metadata,
    sa.Column("sha256", sa.Text, sa.ForeignKey("files.sha256"), primary_key=True),
    sa.Column("location", sa.Text, primary_key=True),
    sa.Column("store_key", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

file_owners = sa.Table(
    "file_owners",
    metadata,
    sa.Column("sha256", sa.Text, sa.ForeignKey("files.sha256"), primary_key=True),
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("content_type", sa.Text),
    sa.Column("upload_id", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("legal_hold", sa.Boolean, nullable=False),
)

# Per-user overrides of the default limits (None: the default); the row also serialises the
# quota checks of one user (see quota/storage.py).
quotas = sa.Table(
    "quotas",
    metadata,
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("max_bytes", sa.BigInteger),
    sa.Column("max_uploads", sa.Integer),
    sa.Column("max_file_size", sa.BigInteger),
    sa.Column("updated_at", UTCDateTime),
    sa.Column("max_downloads", sa.BigInteger),
    sa.Column("max_concurrent_downloads", sa.Integer),
    sa.Column("max_download_bytes", sa.BigInteger),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),  # who acted: a user id, or "system"
    sa.Column("owner", sa.Text),  # whose upload, file or quota it concerned
    sa.Column("upload_id", sa.Text),
    sa.Column("sha256", sa.Text),
    sa.Column("client", sa.Text),  # the address the request came from
    sa.Column("detail", JSONText),
)

# Bytes whose catalogue rows are gone, written in the same transaction, removed once the store
# deleted them: a crash in between leaves a row for the sweeper instead of an orphan object.
pending_deletions = sa.Table(
    "pending_deletions",
    metadata,
    sa.Column("location", sa.Text, primary_key=True),
    sa.Column("store_key", sa.Text, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Files restored from a cold location into the restore cache. ``restoring``: one instance is on
# it (``claimed_at`` is its heartbeat; another takes over when it stops beating) writing into
# ``store_key``; ``ready``: readable from the cache until ``expires_at``, least recently read
# (``last_read_at``) evicted first when room is needed.
cache_entries = sa.Table(
    "cache_entries",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("store_key", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("last_read_at", UTCDateTime),
)
