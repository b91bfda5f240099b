"""Roles come from Keycloak's claim layout; any other shape is refused, never misread."""

from __future__ import annotations

from typing import Any

import pytest

from app.auth.principal import from_claims


def test_realm_and_client_roles() -> None:
    claims = {
        "sub": "u1",
        "preferred_username": "alice",
        "realm_access": {"roles": ["user"]},
        "resource_access": {"tusgate": {"roles": ["admin"]}, "other": {"roles": ["x"]}},
    }
    principal = from_claims(claims, "tusgate")
    assert (principal.id, principal.name, principal.roles) == ("u1", "alice", {"user", "admin"})
    assert from_claims({"sub": "u2"}, "tusgate").roles == frozenset()


@pytest.mark.parametrize(
    "claims",
    [
        {"realm_access": {"roles": "admin"}},  # a string is not a list of roles
        {"realm_access": ["admin"]},
        {"realm_access": {"roles": [1]}},
        {"resource_access": ["tusgate"]},
        {"resource_access": {"tusgate": {"roles": "admin"}}},
    ],
)
def test_malformed_role_claims_raise(claims: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        from_claims({"sub": "u", **claims}, "tusgate")
