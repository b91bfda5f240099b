"""Bearer authentication as a plain ASGI middleware.

It runs before any handler, so no byte of a request body is read for an unauthenticated
caller. CORS preflights never reach it (the CORS middleware answers them), and a few public
paths (health) pass without a token. Requests under a link prefix (``/download/``) that carry
a ``token`` query parameter pass too: that is a download link, which the download handler
verifies itself, because only it knows which file the link must name. Verifiers raise an
``AuthError``; this module alone turns it into a response: 401 for a bad token, 403 for a
missing role, 503 when the identity provider cannot be asked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.errors import AuthError, InsufficientRole, InvalidToken
from app.auth.principal import Principal
from app.lru import LRU

Verifier = Callable[[str], Awaitable[Principal]]


def require_role(verify: Verifier, role: str, admin_role: str) -> Verifier:
    """Wrap ``verify`` so that only holders of ``role`` (or of ``admin_role``) get through.

    It composes with either identity mode, so the role rule is the same for local and OIDC
    tokens.
    """

    async def verify_with_role(token: str) -> Principal:
        principal = await verify(token)
        if not (principal.has_role(role) or (admin_role and principal.has_role(admin_role))):
            raise InsufficientRole(f"the token lacks the role {role!r}")
        return principal

    return verify_with_role


def remembering(verify: Verifier, capacity: int = 10_000) -> Verifier:
    """Wrap ``verify`` so that a token it accepted is taken again without verifying its
    signature, until the token expires.

    A tus client sends the same token with every PATCH and HEAD of an upload; the ES256
    signature check alone was 3 % of the event loop at 400 concurrent uploads
    (bench/RESULTS.md). A signed token cannot change, and its `exp` is the time up to which
    its issuer vouches for it — as long as the key that signed it stays the issuer's: so this
    wraps only a verifier whose keys cannot change while it runs (the local issuer). A refused
    token is not remembered. Bounded: the least recently used tokens go first.
    """
    accepted: LRU[str, Principal] = LRU(capacity)

    async def verify_remembered(token: str) -> Principal:
        principal = accepted.get(token)
        if principal is not None and principal.expires_at is not None:
            if principal.expires_at > time.time():
                return principal
            accepted.pop(token)
        principal = await verify(token)
        if principal.expires_at is not None:
            accepted.put(token, principal)
        return principal

    return verify_remembered


def link_token(scope: Scope) -> str | None:
    """The ``token`` query parameter of a request, if it has a non-empty one."""
    return QueryParams(scope.get("query_string", b"")).get("token") or None


class BearerAuth:
    def __init__(
        self,
        app: ASGIApp,
        verify: Verifier,
        public_paths: frozenset[str],
        link_prefixes: tuple[str, ...] = (),
        public_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.verify = verify
        self.public_paths = public_paths
        self.link_prefixes = link_prefixes
        self.public_prefixes = public_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_public(scope) or self._is_link(scope):
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidToken("missing bearer token")
            scope["user"] = await self.verify(token.strip())
        except AuthError as exc:
            await _refusal(exc, scope["method"])(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _is_public(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return path in self.public_paths or path.startswith(self.public_prefixes)

    def _is_link(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return path.startswith(self.link_prefixes) and link_token(scope) is not None


def _refusal(error: AuthError, method: str) -> Response:
    reason = str(error)
    headers = {"Tus-Resumable": "1.0.0"}
    if error.bearer_error is not None:
        quoted = json.dumps(reason)  # a quoted-string: escapes quotes and backslashes
        headers["WWW-Authenticate"] = (
            f'Bearer error="{error.bearer_error}", error_description={quoted}'
        )
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    body = b"" if method == "HEAD" else f"{error.label}: {reason}\n".encode()
    return Response(body, status_code=error.status_code, headers=headers, media_type="text/plain")
