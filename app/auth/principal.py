"""Who is calling: the identity every request carries after the bearer middleware."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Principal:
    id: str  # the token's `sub`: stable, used as the owner of uploads and files
    name: str  # `preferred_username`, for display and audit
    roles: frozenset[str]

    def has_role(self, role: str) -> bool:
        return role in self.roles


def from_claims(claims: Mapping[str, Any], client_id: str | None = None) -> Principal:
    """Read a principal from Keycloak's claim layout (the local issuer uses the same layout)."""
    roles = set(claims.get("realm_access", {}).get("roles", []))
    if client_id is not None:
        roles.update(claims.get("resource_access", {}).get(client_id, {}).get("roles", []))
    subject = str(claims["sub"])
    return Principal(
        id=subject,
        name=str(claims.get("preferred_username") or subject),
        roles=frozenset(str(role) for role in roles),
    )
