"""Redis clients whose commands wait for a free connection instead of failing at once.

redis-py's default pool raises "Too many connections" as soon as 100 commands are in flight.
400 uploads at once, each renewing its lock in the background, got there on S3: a lock could
be neither renewed nor released, and that upload's next PATCH waited for it to expire and
answered 423 (bench/RESULTS.md). A blocking pool queues a command for up to ``wait`` seconds;
only then does the caller see a connection error (a 503 to retry).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

CONNECTIONS = 100  # per client, as redis-py's default pool


def client(url: str, *, wait: float = 5.0, **options: Any) -> Redis:
    """A client of its own pool (closed with it); ``options`` go to each connection."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=CONNECTIONS, timeout=wait, **options
    )
    return Redis.from_pool(pool)
