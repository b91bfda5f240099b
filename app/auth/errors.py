"""Why a request may not pass the bearer middleware; each class says how it is answered.

The middleware turns any ``AuthError`` into its status, with an RFC 6750 ``WWW-Authenticate``
challenge where there is one, so verifiers only decide which error applies.
"""

from __future__ import annotations

from typing import ClassVar


class AuthError(Exception):
    """A refused request; ``str(error)`` is the short reason sent to the client."""

    status_code: ClassVar[int]
    # RFC 6750 error code for the WWW-Authenticate challenge; None: no challenge applies.
    bearer_error: ClassVar[str | None]
    label: ClassVar[str]
    # Seconds a client should wait before trying again; None: no Retry-After header.
    retry_after: int | None = None


class InvalidToken(AuthError):
    """Missing, malformed, expired or wrongly signed token: answered 401."""

    status_code = 401
    bearer_error = "invalid_token"
    label = "unauthorized"


class InsufficientRole(AuthError):
    """A valid token without the role the gateway requires: answered 403."""

    status_code = 403
    bearer_error = "insufficient_scope"
    label = "forbidden"


class ProviderUnavailable(AuthError):
    """The identity provider (discovery, JWKS) cannot be reached or answers nonsense: 503.

    Not 401: the token may well be valid, and the client should retry rather than log in again.
    """

    status_code = 503
    bearer_error = None
    label = "identity provider unavailable"

    def __init__(self, reason: str, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
