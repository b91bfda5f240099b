"""Authentication failures, turned into 401/403 by the bearer middleware."""

from __future__ import annotations


class InvalidToken(Exception):
    """Missing, malformed, expired or wrongly signed token: answered 401."""
