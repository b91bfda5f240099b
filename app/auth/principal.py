"""Who is calling: the identity every request carries after the bearer middleware."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.types import Scope


@dataclass(frozen=True)
class Principal:
    id: str  # the token's `sub`: stable, used as the owner of uploads and files
    name: str  # `preferred_username`, for display and audit
    roles: frozenset[str]
    address: str | None = None  # where this request came from, for the audit trail
    expires_at: float | None = None  # the token's `exp`: until when it may be taken as is

    def has_role(self, role: str) -> bool:
        return role in self.roles


def of_request(scope: Scope) -> Principal:
    """The authenticated caller of a request (set by the bearer middleware), with its address."""
    principal: Principal = scope["user"]
    client = scope.get("client")
    return replace(principal, address=client[0] if client else None)


def from_claims(claims: Mapping[str, Any], client_id: str | None = None) -> Principal:
    """Read a principal from Keycloak's claim layout (the local issuer uses the same layout)."""
    roles = _roles(claims.get("realm_access"))
    if client_id is not None:
        clients = claims.get("resource_access") or {}
        if not isinstance(clients, Mapping):
            raise TypeError("resource_access must be an object")
        roles |= _roles(clients.get(client_id))
    subject = str(claims["sub"])
    name = str(claims.get("preferred_username") or subject)
    expires = claims.get("exp")
    expires_at = float(expires) if isinstance(expires, int | float) else None
    return Principal(id=subject, name=name, roles=roles, expires_at=expires_at)


def _roles(access: Any) -> frozenset[str]:
    """``{"roles": ["a", "b"]}``, absent, or a ``TypeError`` for any other shape."""
    if access is None:
        return frozenset()
    roles = access.get("roles", []) if isinstance(access, Mapping) else None
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise TypeError("role claims must be {'roles': [strings]}")
    return frozenset(roles)
