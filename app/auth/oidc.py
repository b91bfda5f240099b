"""OIDC mode: access tokens signed by an OpenID provider (Keycloak), checked against its JWKS.

The provider is found by discovery (``{issuer}/.well-known/openid-configuration``, whose
``issuer`` must be the configured one); its signing keys come from the ``jwks_uri`` it names and
are cached by key id. A token naming a key id the cache does not hold makes it refetch the JWKS,
so a key rotation is picked up without a restart. Refetches happen at most once per
``min_refresh_seconds`` (made-up key ids cannot hammer the provider), and keys older than
``KEYS_MAX_AGE_SECONDS`` are refetched too, so a key the provider withdrew stops being accepted
even when no new key shows up; while the provider is unreachable, the cached keys stay in use.

Only asymmetric signatures pass, made with a key of the matching type taken from the provider's
JWKS: never ``none``, never an HMAC keyed with a public key, never a key the token brings along.
Failures to reach the provider become ``ProviderUnavailable`` (503) here, at the boundary; every
reason to refuse the token itself becomes ``InvalidToken`` (401).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import Key, import_key
from joserfc.jws import JWSRegistry

from app.auth.errors import InvalidToken, ProviderUnavailable
from app.auth.principal import Principal, from_claims
from app.settings import Settings

log = logging.getLogger("tusgate.auth")

ALGORITHMS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"),
    *("EdDSA", "Ed25519", "Ed448"),  # Keycloak says EdDSA; RFC 9864 names the curve instead
)
SIGNING_KEY_TYPES = ("RSA", "EC", "OKP")  # never "oct": a JWKS cannot smuggle in an HMAC secret
KEYS_MAX_AGE_SECONDS = 600.0
HTTP_TIMEOUT_SECONDS = 5.0

_REGISTRY = JWSRegistry(algorithms=ALGORITHMS, strict_check_header=False)


def provider_client() -> httpx.AsyncClient:
    """The HTTP client for discovery and JWKS: short timeouts, since requests wait on it."""
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS)


class OIDCVerifier:
    """``verify(token) -> Principal`` for tokens of one issuer, meant for one audience."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        client_id: str,
        leeway_seconds: int,
        min_refresh_seconds: float,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = ProviderKeys(issuer, http, min_refresh_seconds, clock)
        self._audience = audience
        self._client_id = client_id
        self._claims = jwt.JWTClaimsRegistry(
            leeway=leeway_seconds,
            iss={"essential": True, "value": issuer},
            sub={"essential": True},
            exp={"essential": True},
        )

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.AsyncClient) -> OIDCVerifier:
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            client_id=settings.effective_oidc_client_id,
            leeway_seconds=settings.token_leeway_seconds,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            http=http,
        )

    async def verify(self, token: str) -> Principal:
        key = await self._keys.get(_key_id(token))
        claims = self._verified_claims(token, key)
        # Keycloak marks ID tokens "ID": they prove a login to a client, they grant no access.
        if str(claims.get("typ", "Bearer")).lower() != "bearer":
            raise InvalidToken("not an access token")
        audiences = claims.get("aud")
        if isinstance(audiences, str):
            audiences = [audiences]
        if self._audience not in (audiences or []) and claims.get("azp") != self._audience:
            raise InvalidToken("token not meant for this gateway")
        try:
            return from_claims(claims, self._client_id)
        except (AttributeError, TypeError) as exc:  # e.g. realm_access that is not an object
            raise InvalidToken("malformed role claims") from exc

    def _verified_claims(self, token: str, key: Key) -> dict[str, Any]:
        try:
            with warnings.catch_warnings():
                # Accepting Keycloak's "EdDSA" (deprecated by RFC 9864 in name only) is deliberate.
                warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
                claims = jwt.decode(token, key, registry=_REGISTRY).claims
            self._claims.validate(claims)
        except JoseError as exc:
            raise InvalidToken(exc.description or exc.error.replace("_", " ")) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidToken("malformed token") from exc
        return claims


def _key_id(token: str) -> str:
    """The key id a token names, once its algorithm is known to be acceptable.

    Checked before any key is looked up, so a token with ``none`` or ``HS256`` is refused
    without a word to the provider.
    """
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError) as exc:
        raise InvalidToken("malformed token") from exc
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise InvalidToken("signature algorithm not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("token names no signing key")
    return kid


class ProviderKeys:
    """The provider's signing keys by key id: discovered, fetched, cached, refetched when due."""

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        min_refresh_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._issuer = issuer
        self._http = http
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._lock = anyio.Lock()
        self._jwks_uri: str | None = None
        self._keys: dict[str, Key] = {}
        self._fetched_at: float | None = None  # the last successful fetch
        self._attempted_at: float | None = None  # the last fetch, successful or not
        self._failure: ProviderUnavailable | None = None  # why the last fetch failed
        self._attempts = 0

    async def get(self, kid: str) -> Key:
        key = self._keys.get(kid)
        if key is None or self._stale():
            await self._refresh()
            key = self._keys.get(kid)
        if key is not None:
            return key
        if self._failure is not None:
            # The key may exist: the provider could not be asked. Retry, don't log in again.
            raise ProviderUnavailable(str(self._failure), self._retry_after())
        raise InvalidToken("unknown signing key")

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= KEYS_MAX_AGE_SECONDS

    def _rate_limited(self) -> bool:
        if self._attempted_at is None:
            return False
        return self._clock() - self._attempted_at < self._min_refresh

    def _retry_after(self) -> int:
        waited = self._clock() - (self._attempted_at or 0.0)
        return max(1, math.ceil(self._min_refresh - waited))

    async def _refresh(self) -> None:
        """Fetch the keys again, unless a fetch happened less than ``min_refresh`` ago.

        Callers that queued behind a fetch take its outcome instead of fetching again. The
        fetch is shielded: a caller that goes away must not leave the cache half-updated.
        """
        seen = self._attempts
        async with self._lock:
            if self._attempts != seen or self._rate_limited():
                return
            self._attempts += 1
            self._attempted_at = self._clock()
            with anyio.CancelScope(shield=True):
                try:
                    self._keys = await self._fetch()
                except ProviderUnavailable as exc:
                    log.warning("identity provider %s: %s", self._issuer, exc)
                    self._failure = exc
                else:
                    self._fetched_at = self._attempted_at
                    self._failure = None

    async def _fetch(self) -> dict[str, Key]:
        if self._jwks_uri is None:
            discovery_url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
            discovery = await self._get_json("discovery", discovery_url)
            if discovery.get("issuer") != self._issuer:
                raise ProviderUnavailable("discovery names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise ProviderUnavailable("discovery names no jwks_uri")
            self._jwks_uri = jwks_uri
        keys = _signing_keys(await self._get_json("JWKS", self._jwks_uri))
        if not keys:
            raise ProviderUnavailable("the JWKS holds no usable signing key")
        return keys

    async def _get_json(self, what: str, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except httpx.HTTPStatusError as exc:
            raise ProviderUnavailable(f"{what} answered {exc.response.status_code}") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ProviderUnavailable(f"{what} unreachable") from exc
        except ValueError as exc:
            raise ProviderUnavailable(f"{what} is not JSON") from exc
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"{what} is not a JSON object")
        return document


def _signing_keys(jwks: dict[str, Any]) -> dict[str, Key]:
    """The asymmetric signature keys of a JWKS, by key id; anything else in it is ignored."""
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise ProviderUnavailable("the JWKS holds no key list")
    keys: dict[str, Key] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in SIGNING_KEY_TYPES:
            continue
        kid = entry.get("kid")
        if entry.get("use", "sig") != "sig" or not isinstance(kid, str) or not kid:
            continue
        try:
            keys[kid] = import_key(entry)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("ignoring JWKS key %r: %s", kid, exc)
    return keys
