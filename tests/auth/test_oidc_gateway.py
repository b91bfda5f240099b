"""End to end: ``python -m app serve`` in OIDC mode against the stand-in provider's realms."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.auth.attacks import CATALOGUE, Attack
from tests.auth.conftest import StartGateway, oidc_env
from tests.gateways import TUS, Target, start_target
from tests.oidc_provider import OIDCProvider, Realm
from tests.services import free_port
from tests.tus.client import OCTETS

BODY = b"hello world"


@pytest.fixture(scope="module")
def shared_realm(provider: OIDCProvider) -> Realm:
    return provider.new_realm()


@pytest.fixture(scope="module")
def gateway(shared_realm: Realm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One gateway with the default identity settings, for the tests that change nothing."""
    data_dir = tmp_path_factory.mktemp("oidc-gateway")
    target = start_target("oidc", oidc_env(data_dir, shared_realm.issuer))
    yield target
    target.gateway.close()


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {**TUS, "Authorization": f"Bearer {token}", **extra}


def create(http: httpx.Client, target: Target, token: str) -> httpx.Response:
    return http.post(target.files_url, headers=bearer(token, **{"Upload-Length": str(len(BODY))}))


def upload(http: httpx.Client, target: Target, token: str) -> str:
    """Create an upload and send its bytes; its URL."""
    created = create(http, target, token)
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    headers = bearer(token, **{"Upload-Offset": "0", "Content-Type": OCTETS})
    patched = http.patch(url, headers=headers, content=BODY)
    assert patched.status_code == 204, patched.text
    return url


def description(response: httpx.Response) -> str:
    challenge = response.headers["www-authenticate"]
    _, _, quoted = challenge.partition("error_description=")
    reason: str = json.loads(quoted)
    return reason


def test_user_token_uploads_and_owns_the_upload(
    gateway: Target, shared_realm: Realm, http: httpx.Client
) -> None:
    alice = shared_realm.token(username="alice")
    url = upload(http, gateway, alice)
    mine = http.head(url, headers=bearer(alice))
    assert mine.status_code == 200
    assert mine.headers["upload-offset"] == str(len(BODY))
    others = http.head(url, headers=bearer(shared_realm.token(username="bob")))
    assert others.status_code == 404  # the owner is the token's subject


def test_service_account_token_uploads(
    gateway: Target, shared_realm: Realm, http: httpx.Client
) -> None:
    url = upload(http, gateway, shared_realm.service_token("tusgate-cli"))
    assert url.startswith(gateway.files_url)


@pytest.mark.parametrize("attack", CATALOGUE, ids=lambda attack: attack.name)
def test_attack_is_refused_with_401(
    gateway: Target, shared_realm: Realm, other_realm: Realm, http: httpx.Client, attack: Attack
) -> None:
    response = create(http, gateway, attack.forge(shared_realm, other_realm))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert attack.reason in description(response)
    assert response.headers["tus-resumable"] == "1.0.0"


def test_user_role_is_required_from_realm_or_client_roles(
    realm: Realm, start_gateway: StartGateway, http: httpx.Client
) -> None:
    target = start_gateway(realm.issuer, TUSGATE_USER_ROLE="user")
    cases = [
        ({"realm_roles": ["user"]}, 201),
        ({"realm_roles": [], "client_roles": {"tusgate": ["user"]}}, 201),
        ({"realm_roles": ["admin"]}, 201),
        ({"realm_roles": [], "client_roles": {"another-app": ["user"]}}, 403),
        ({"realm_roles": []}, 403),
    ]
    for roles, status in cases:
        response = create(http, target, realm.token(**roles))
        assert response.status_code == status, roles
    refused = create(http, target, realm.token(realm_roles=["guest"]))
    assert refused.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert "user" in description(refused)


def test_user_role_applies_to_local_tokens_too(
    start_gateway: StartGateway, http: httpx.Client
) -> None:
    target = start_gateway(None, TUSGATE_USER_ROLE="user")
    assert create(http, target, target.issuer.issue("carol", ["user"], 600)).status_code == 201
    assert create(http, target, target.issuer.issue("dave", [], 600)).status_code == 403


def test_rotated_key_is_picked_up_without_a_restart(
    realm: Realm, start_gateway: StartGateway, http: httpx.Client
) -> None:
    target = start_gateway(realm.issuer, TUSGATE_JWKS_MIN_REFRESH_SECONDS="0")
    pid = target.gateway.pid
    old = realm.token()
    assert create(http, target, old).status_code == 201
    realm.rotate()
    upload(http, target, realm.token())  # signed by the new key
    refused = create(http, target, old)  # signed by the key the JWKS no longer lists
    assert refused.status_code == 401
    assert description(refused) == "unknown signing key"
    assert target.gateway.pid == pid
    assert realm.stats()["discovery"] == 1


def test_unknown_kids_cannot_hammer_the_provider(
    realm: Realm, start_gateway: StartGateway, http: httpx.Client
) -> None:
    target = start_gateway(realm.issuer, TUSGATE_JWKS_MIN_REFRESH_SECONDS="3600")
    tokens = [realm.token(header={"kid": f"made-up-{n}"}) for n in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda token: create(http, target, token).status_code, tokens))
    assert statuses == [401] * len(tokens)
    assert realm.stats() == {"discovery": 1, "jwks": 1}  # the first load, then nothing
    assert create(http, target, realm.token()).status_code == 201


@pytest.mark.parametrize("outage", ["unreachable", "failing"])
def test_provider_down_is_503(
    provider: OIDCProvider, start_gateway: StartGateway, http: httpx.Client, outage: str
) -> None:
    realm = provider.new_realm()
    issuer = realm.issuer
    if outage == "unreachable":
        issuer = f"http://127.0.0.1:{free_port()}/realms/{realm.name}"
    else:
        realm.fail(500)
    target = start_gateway(issuer)  # starts without the provider: keys are fetched on demand
    token = realm.token()
    for method in ("POST", "HEAD"):
        response = http.request(method, target.files_url, headers=bearer(token))
        assert response.status_code == 503
        assert "www-authenticate" not in response.headers
        assert 1 <= int(response.headers["retry-after"]) <= 30
    assert response.content == b""  # HEAD
    post = create(http, target, token)
    assert post.text.startswith("identity provider unavailable: discovery")
    log = target.gateway.log_text()
    assert f"identity provider {issuer}: discovery" in log
    assert token not in log
    assert token.split(".")[2] not in log
