"""The OIDC verifier in-process, against the stand-in provider in its own process.

A fake monotonic clock drives the refresh interval and the keys' age, so tests about time never
wait for it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from app.auth.errors import InvalidToken, ProviderUnavailable
from app.auth.oidc import KEYS_MAX_AGE_SECONDS, OIDCVerifier
from tests.auth.attacks import CATALOGUE, Attack, alg_none, hs256_keyed_with_public_pem, split
from tests.oidc_provider import OIDCProvider, Realm
from tests.services import free_port

pytestmark = pytest.mark.anyio

REFRESH = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def verifier(
    issuer: str, clock: FakeClock | None = None, client_id: str = "tusgate"
) -> AsyncIterator[OIDCVerifier]:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        yield OIDCVerifier(
            issuer=issuer,
            audience="tusgate",
            client_id=client_id,
            leeway_seconds=30,
            min_refresh_seconds=REFRESH,
            http=http,
            clock=clock or FakeClock(),
        )


def with_kid(realm: Realm) -> str:
    return realm.token(header={"kid": f"made-up-{uuid.uuid4().hex}"})


async def test_user_token_names_the_subject_and_its_realm_and_client_roles(realm: Realm) -> None:
    token = realm.token(
        username="alice",
        realm_roles=["user"],
        client_roles={"tusgate": ["uploader"], "another-app": ["boss"]},
    )
    async with verifier(realm.issuer) as oidc:
        principal = await oidc.verify(token)
    assert principal.id == split(token)[1]["sub"]
    assert principal.name == "alice"
    assert {"user", "uploader"} <= principal.roles
    assert "boss" not in principal.roles  # another client's roles are not ours
    assert "manage-account" not in principal.roles


async def test_client_roles_come_from_the_configured_client(realm: Realm) -> None:
    token = realm.token(client_roles={"tusgate": ["uploader"], "tusgate-api": ["auditor"]})
    async with verifier(realm.issuer, client_id="tusgate-api") as oidc:
        principal = await oidc.verify(token)
    assert "auditor" in principal.roles
    assert "uploader" not in principal.roles


async def test_service_account_token(realm: Realm) -> None:
    async with verifier(realm.issuer) as oidc:
        principal = await oidc.verify(realm.service_token("tusgate-cli"))
    assert principal.name == "service-account-tusgate-cli"
    assert "user" in principal.roles


async def test_authorized_party_equal_to_the_audience_is_enough(realm: Realm) -> None:
    token = realm.token(claims={"aud": None, "azp": "tusgate"})
    async with verifier(realm.issuer) as oidc:
        assert (await oidc.verify(token)).name == "alice"


async def test_role_claims_of_the_wrong_shape_are_refused_not_crashed_on(realm: Realm) -> None:
    token = realm.token(claims={"realm_access": ["admin"]})
    async with verifier(realm.issuer) as oidc:
        with pytest.raises(InvalidToken, match="malformed role claims"):
            await oidc.verify(token)


@pytest.mark.parametrize(
    "algorithm",
    [
        *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"),
        *("EdDSA", "Ed25519", "Ed448"),
    ],
)
async def test_every_asymmetric_algorithm(provider: OIDCProvider, algorithm: str) -> None:
    realm = provider.new_realm(algorithm)
    token = realm.token()
    assert split(token)[0]["alg"] == algorithm
    async with verifier(realm.issuer) as oidc:
        assert (await oidc.verify(token)).name == "alice"


@pytest.mark.parametrize("attack", CATALOGUE, ids=lambda attack: attack.name)
async def test_attack_is_refused(realm: Realm, other_realm: Realm, attack: Attack) -> None:
    token = attack.forge(realm, other_realm)
    async with verifier(realm.issuer) as oidc:
        await oidc.verify(realm.token())  # the keys are in: the refusal is about the token
        with pytest.raises(InvalidToken, match=attack.reason):
            await oidc.verify(token)


@pytest.mark.parametrize("forge", [alg_none, hs256_keyed_with_public_pem])
async def test_refused_algorithms_never_reach_the_provider(
    realm: Realm, other_realm: Realm, forge: Callable[[Realm, Realm], str]
) -> None:
    token = forge(realm, other_realm)
    before = realm.stats()  # forging reads the public key from the JWKS
    async with verifier(realm.issuer) as oidc:
        with pytest.raises(InvalidToken, match="algorithm not allowed"):
            await oidc.verify(token)
    assert realm.stats() == before
    assert before["discovery"] == 0


async def test_key_rotation_is_picked_up_once_the_refresh_interval_allows(realm: Realm) -> None:
    clock = FakeClock()
    async with verifier(realm.issuer, clock) as oidc:
        old = realm.token()
        await oidc.verify(old)
        realm.rotate()
        new = realm.token()
        # Right after a fetch a new kid waits for the interval: the price of the rate limit.
        with pytest.raises(InvalidToken, match="unknown signing key"):
            await oidc.verify(new)
        clock.advance(REFRESH)
        assert (await oidc.verify(new)).name == "alice"
        with pytest.raises(InvalidToken, match="unknown signing key"):
            await oidc.verify(old)
    assert realm.stats() == {"discovery": 1, "jwks": 2}


async def test_unknown_kids_cause_at_most_one_fetch_per_interval(realm: Realm) -> None:
    clock = FakeClock()
    refused: list[str] = []

    async def attempt(oidc: OIDCVerifier, token: str) -> None:
        with pytest.raises(InvalidToken) as caught:
            await oidc.verify(token)
        refused.append(str(caught.value))

    async def burst(oidc: OIDCVerifier) -> None:
        tokens = [with_kid(realm) for _ in range(25)]
        async with anyio.create_task_group() as tasks:
            for token in tokens:
                tasks.start_soon(attempt, oidc, token)

    async with verifier(realm.issuer, clock) as oidc:
        await burst(oidc)  # the first one loads the keys; the others share that fetch
        assert realm.stats()["jwks"] == 1
        clock.advance(REFRESH - 1)
        await burst(oidc)
        assert realm.stats()["jwks"] == 1
        clock.advance(1)
        await burst(oidc)
        assert realm.stats() == {"discovery": 1, "jwks": 2}
    assert refused == ["unknown signing key"] * 75


async def test_a_withdrawn_key_is_refused_once_the_keys_are_old(realm: Realm) -> None:
    clock = FakeClock()
    async with verifier(realm.issuer, clock) as oidc:
        old = realm.token()
        await oidc.verify(old)
        realm.rotate()
        assert (await oidc.verify(old)).name == "alice"  # still cached
        clock.advance(KEYS_MAX_AGE_SECONDS)
        with pytest.raises(InvalidToken, match="unknown signing key"):
            await oidc.verify(old)


async def test_cached_keys_outlive_a_provider_failure(realm: Realm) -> None:
    clock = FakeClock()
    async with verifier(realm.issuer, clock) as oidc:
        token = realm.token()
        await oidc.verify(token)
        realm.fail(500)
        clock.advance(KEYS_MAX_AGE_SECONDS)
        assert (await oidc.verify(token)).name == "alice"  # old keys, but the provider is down
        assert realm.stats()["jwks"] == 2
        clock.advance(REFRESH / 3)
        with pytest.raises(ProviderUnavailable, match="JWKS answered 500") as caught:
            await oidc.verify(with_kid(realm))  # it may exist: 503, not 401
        assert caught.value.retry_after == REFRESH * 2 / 3
        assert realm.stats()["jwks"] == 2  # no fetch within the interval, even after a failure
        realm.fail(None)
        clock.advance(REFRESH)
        with pytest.raises(InvalidToken, match="unknown signing key"):
            await oidc.verify(with_kid(realm))


async def test_unreachable_provider_is_unavailable_not_unauthorized(realm: Realm) -> None:
    clock = FakeClock()
    async with verifier(f"http://127.0.0.1:{free_port()}/realms/gone", clock) as oidc:
        for _ in range(2):
            with pytest.raises(ProviderUnavailable, match="discovery unreachable"):
                await oidc.verify(realm.token())


async def test_provider_error_is_unavailable(realm: Realm) -> None:
    realm.fail(502)
    async with verifier(realm.issuer) as oidc:
        with pytest.raises(ProviderUnavailable, match="discovery answered 502"):
            await oidc.verify(realm.token())


async def test_discovery_must_name_the_configured_issuer(provider: OIDCProvider) -> None:
    realm = provider.new_realm(discovery_issuer="https://elsewhere.example/realms/tusgate")
    async with verifier(realm.issuer) as oidc:
        with pytest.raises(ProviderUnavailable, match="another issuer"):
            await oidc.verify(realm.token())
    assert realm.stats() == {"discovery": 1, "jwks": 0}
