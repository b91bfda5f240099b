"""The Keycloak realm and the compose file, read as data (no Docker engine in the tests).

They are checked against each other and against the gateway's defaults, since a mismatch
(audience, issuer, mount path) only shows up as 401s once the stack runs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from app.settings import Settings
from tests.services import REPO_ROOT

REALM_FILE = REPO_ROOT / "deploy" / "keycloak" / "tusgate-realm.json"


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(REALM_FILE.read_text())
    return document


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = compose["services"]
    return services


def client(realm: dict[str, Any], client_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in realm["clients"] if c["clientId"] == client_id)
    return found


def user(realm: dict[str, Any], username: str) -> dict[str, Any]:
    found: dict[str, Any] = next(u for u in realm["users"] if u["username"] == username)
    return found


def audiences(client: dict[str, Any]) -> list[str]:
    return [
        mapper["config"]["included.custom.audience"]
        for mapper in client.get("protocolMappers", [])
        if mapper["protocolMapper"] == "oidc-audience-mapper"
    ]


def test_realm_roles_and_users(realm: dict[str, Any]) -> None:
    assert realm["realm"] == "tusgate"
    assert {role["name"] for role in realm["roles"]["realm"]} >= {"user", "admin"}
    assert user(realm, "alice")["realmRoles"] == ["user"]
    assert set(user(realm, "admin")["realmRoles"]) == {"user", "admin"}
    # Built-in client scopes (and so the roles in tokens) exist only if the realm declares none.
    assert "clientScopes" not in realm


def test_web_client_is_public_with_pkce(realm: dict[str, Any]) -> None:
    web = client(realm, "tusgate-web")
    assert web["publicClient"] is True
    assert web["standardFlowEnabled"] is True
    assert web["implicitFlowEnabled"] is False
    assert web["attributes"]["pkce.code.challenge.method"] == "S256"
    # The embedded gateway, and the compose stack behind nginx.
    assert web["redirectUris"] == ["http://localhost:8080/*", "https://localhost/*"]
    assert web["webOrigins"] == ["http://localhost:8080", "https://localhost"]


def test_cli_client_is_a_confidential_service_account_with_the_user_role(
    realm: dict[str, Any],
) -> None:
    cli = client(realm, "tusgate-cli")
    assert cli["publicClient"] is False
    assert cli["serviceAccountsEnabled"] is True
    assert cli["standardFlowEnabled"] is False
    account = user(realm, "service-account-tusgate-cli")
    assert account["serviceAccountClientId"] == "tusgate-cli"
    assert "user" in account["realmRoles"]


def test_tokens_of_both_clients_carry_the_gateways_default_audience(realm: dict[str, Any]) -> None:
    for client_id in ("tusgate-web", "tusgate-cli"):
        assert audiences(client(realm, client_id)) == [Settings().oidc_audience]
        # "basic" carries `sub` since Keycloak 25; "roles" carries realm_access/resource_access.
        assert {"basic", "roles"} <= set(client(realm, client_id)["defaultClientScopes"])


def test_compose_runs_keycloak_with_the_realm_and_the_gateway_against_it(
    services: dict[str, Any],
) -> None:
    keycloak, gateway = services["keycloak"], services["tusgate-1"]
    assert keycloak["image"].startswith("quay.io/keycloak/keycloak:")
    assert {"start-dev", "--import-realm"} <= set(keycloak["command"])
    mounts = [volume.split(":") for volume in keycloak["volumes"]]
    assert [
        (source, target)
        for source, target, *_ in mounts
        if target.startswith("/opt/keycloak/data/import/")
    ] == [("./deploy/keycloak/tusgate-realm.json", "/opt/keycloak/data/import/tusgate-realm.json")]
    assert REALM_FILE.exists()
    assert "build" in gateway
    issuer = gateway["environment"]["TUSGATE_OIDC_ISSUER"]
    assert issuer == f"{keycloak['environment']['KC_HOSTNAME']}/realms/tusgate"
