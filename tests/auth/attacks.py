"""Forged and ill-formed tokens: the attack catalogue every OIDC verifier must refuse (401).

One table serves two suites: the verifier's own tests expect ``InvalidToken`` with ``reason``
in its message, the gateway's tests expect a 401 whose ``error_description`` carries it.
Forgeries are built by hand (base64url, HMAC), not with the library under test, so that its own
safeguards cannot hide a gap in the verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.oidc_provider import Realm


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A token's header and claims (unverified) and its signature, as sent."""
    header, claims, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(claims)), signature


def assemble(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A compact JWS: HMAC-SHA256 keyed with ``secret``, or no signature at all."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if secret is None:
        return f"{signing_input}."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def current_kid(realm: Realm) -> str:
    kid: str = split(realm.token())[0]["kid"]
    return kid


def public_jwk(realm: Realm) -> dict[str, Any]:
    kid = current_kid(realm)
    jwk: dict[str, Any] = next(key for key in realm.jwks()["keys"] if key["kid"] == kid)
    return jwk


def _hmac_with_public_key(realm: Realm, secret: bytes) -> str:
    _, claims, _ = split(realm.token())
    return assemble({"alg": "HS256", "typ": "JWT", "kid": current_kid(realm)}, claims, secret)


def alg_none(realm: Realm, other: Realm) -> str:
    _, claims, _ = split(realm.token())
    return assemble({"alg": "none", "typ": "JWT", "kid": current_kid(realm)}, claims, None)


def hs256_keyed_with_public_pem(realm: Realm, other: Realm) -> str:
    pem = RSAKey.import_key(public_jwk(realm)).as_pem(private=False)
    return _hmac_with_public_key(realm, pem)


def hs256_keyed_with_public_jwk(realm: Realm, other: Realm) -> str:
    return _hmac_with_public_key(realm, json.dumps(public_jwk(realm)).encode())


def tampered_payload(realm: Realm, other: Realm) -> str:
    header, claims, signature = realm.token(realm_roles=[]).split(".")
    forged = {**json.loads(unb64url(claims)), "realm_access": {"roles": ["user", "admin"]}}
    return f"{header}.{b64url(json.dumps(forged).encode())}.{signature}"


def other_realm(realm: Realm, other: Realm) -> str:
    return other.token()


def other_realm_posing(realm: Realm, other: Realm) -> str:
    """Signed by the other realm's key, but claiming this realm's issuer and key id."""
    return other.token(claims={"iss": realm.issuer}, header={"kid": current_kid(realm)})


def key_set_of_the_token(realm: Realm, other: Realm) -> str:
    """Signed by the attacker's key, with our kid and a ``jku`` naming the attacker's key set."""
    key = RSAKey.generate_key(2048)
    _, claims, _ = split(realm.token())
    header = {"alg": "RS256", "kid": current_kid(realm), "jku": "https://evil.example/jwks"}
    return jwt.encode(header, claims, key)


def ec_signature_for_rsa_kid(realm: Realm, other: Realm) -> str:
    """ES256 by the attacker's key, naming the realm's RSA key: the key type must match."""
    key = ECKey.generate_key("P-256")
    _, claims, _ = split(realm.token())
    return jwt.encode({"alg": "ES256", "kid": current_kid(realm)}, claims, key)


def unknown_kid(realm: Realm, other: Realm) -> str:
    return realm.token(header={"kid": f"made-up-{uuid.uuid4().hex}"})


@dataclass(frozen=True)
class FromNow:
    """A time claim this many seconds from the moment the token is made."""

    seconds: int


def claims(**changes: Any) -> Callable[[Realm, Realm], str]:
    """A correctly signed token with some claims changed (``None`` removes one)."""

    def forge(realm: Realm, other: Realm) -> str:
        now = int(time.time())
        resolved = {
            name: now + value.seconds if isinstance(value, FromNow) else value
            for name, value in changes.items()
        }
        return realm.token(claims=resolved)

    return forge


def fixed(token: str) -> Callable[[Realm, Realm], str]:
    return lambda realm, other: token


@dataclass(frozen=True)
class Attack:
    name: str
    forge: Callable[[Realm, Realm], str]  # (the gateway's realm, another realm) -> token
    reason: str  # part of the refusal's reason


# Times lie further off than the 30 s leeway.
CATALOGUE = [
    Attack("alg none", alg_none, "algorithm not allowed"),
    Attack("HS256 keyed with the public key as PEM", hs256_keyed_with_public_pem, "algorithm"),
    Attack("HS256 keyed with the public JWK JSON", hs256_keyed_with_public_jwk, "algorithm"),
    Attack("wrong iss", claims(iss="https://evil.example/realms/tusgate"), "iss"),
    Attack("wrong aud, no azp", claims(aud="another-api", azp=None), "not meant"),
    Attack("no aud, azp of another client", claims(aud=None, azp="another-app"), "not meant"),
    Attack("expired", claims(iat=FromNow(-600), exp=FromNow(-120)), "expired"),
    Attack("not yet valid (nbf)", claims(nbf=FromNow(120)), "not yet valid"),
    Attack("issued in the future (iat)", claims(iat=FromNow(120), exp=FromNow(900)), "future"),
    Attack("no exp", claims(exp=None), "exp"),
    Attack("no sub", claims(sub=None), "sub"),
    Attack("an ID token", claims(typ="ID"), "not an access token"),
    Attack("unknown kid", unknown_kid, "unknown signing key"),
    Attack("tampered payload", tampered_payload, "bad signature"),
    Attack("token of another realm", other_realm, "unknown signing key"),
    Attack("another realm's token posing as ours", other_realm_posing, "bad signature"),
    Attack("key set named by the token (jku)", key_set_of_the_token, "bad signature"),
    Attack("ES256 naming an RSA key", ec_signature_for_rsa_kid, "requires 'EC' key"),
    Attack("not a JWT", fixed("not.a.jwt"), "malformed"),
    Attack("no kid", lambda realm, other: realm.token(header={"kid": None}), "no signing key"),
]
