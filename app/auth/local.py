"""The local token issuer of the embedded default: no identity provider needed.

The gateway signs ES256 tokens with a key it creates on first use in its data directory
(readable by its user only); ``python -m app token USER`` prints one. Instances that share the
key file accept each other's tokens. Tokens use Keycloak's claim layout, so the code after
verification is the same in both identity modes.

The same key signs download links (``issue_link``): tokens bound to one file and one user. Each
kind of token names its own audience and each verification demands it, so a link never works as
a bearer token, nor a bearer token as a link.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from app.auth.errors import InvalidToken
from app.auth.principal import Principal, from_claims

ISSUER = "tusgate-local"
ALGORITHM = "ES256"
DEFAULT_LEEWAY_SECONDS = 30
ACCESS_AUDIENCE = "tusgate"  # bearer tokens
LINK_AUDIENCE = "tusgate-download"  # download links


@dataclass(frozen=True)
class Link:
    """A verified download link: who may read the file, and whether as an administrator."""

    user: str
    admin: bool


class LocalIssuer:
    def __init__(self, key: ECKey, leeway_seconds: int = DEFAULT_LEEWAY_SECONDS) -> None:
        self._key = key
        self._claims = _registry(ACCESS_AUDIENCE, leeway_seconds)
        self._link_claims = _registry(LINK_AUDIENCE, leeway_seconds)

    @classmethod
    def from_file(cls, path: Path, leeway_seconds: int = DEFAULT_LEEWAY_SECONDS) -> LocalIssuer:
        """Load the signing key, creating it (atomically, mode 0600) if it does not exist."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = ECKey.generate_key("P-256", auto_kid=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                json.dump(key.as_dict(private=True), file)
            try:
                os.link(temporary, path)  # loses to a concurrent creator instead of replacing
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        return cls(ECKey.import_key(json.loads(path.read_text())), leeway_seconds)

    def issue(self, user: str, roles: list[str], ttl_seconds: int) -> str:
        claims = {"preferred_username": user, "realm_access": {"roles": roles}}
        return self._sign(ACCESS_AUDIENCE, user, int(time.time()) + ttl_seconds, claims)

    async def verify(self, token: str) -> Principal:
        return from_claims(self._decode(token, self._claims))

    def issue_link(
        self, user: str, sha256: str, ttl_seconds: int, *, admin: bool = False
    ) -> tuple[str, datetime]:
        """A link token for ``user`` to read the file ``sha256``, and when it expires.

        ``admin`` records that the right to read comes from the administrators' role rather
        than from ownership; without it, the reader must still own the file at download time.
        """
        expires = int(time.time()) + ttl_seconds
        token = self._sign(LINK_AUDIENCE, user, expires, {"sha256": sha256, "adm": admin})
        return token, datetime.fromtimestamp(expires, UTC)

    def verify_link(self, token: str, sha256: str) -> Link:
        """The link, if ``token`` is a valid, unexpired link to the file ``sha256``."""
        claims = self._decode(token, self._link_claims)
        if claims.get("sha256") != sha256:
            raise InvalidToken("the link is for another file")
        return Link(user=str(claims["sub"]), admin=claims.get("adm") is True)

    def _sign(self, audience: str, user: str, expires: int, extra: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": audience,
            "sub": user,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
            **extra,
        }
        return jwt.encode({"alg": ALGORITHM, "kid": self._key.kid}, claims, self._key)

    def _decode(self, token: str, registry: jwt.JWTClaimsRegistry) -> dict[str, Any]:
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidToken(exc.description or exc.error) from exc
        except ValueError as exc:
            raise InvalidToken("malformed token") from exc
        return decoded.claims


def _registry(audience: str, leeway_seconds: int) -> jwt.JWTClaimsRegistry:
    return jwt.JWTClaimsRegistry(
        leeway=leeway_seconds,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": audience},
        sub={"essential": True},
        exp={"essential": True},
    )
