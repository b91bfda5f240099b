"""The local token issuer of the embedded default: no identity provider needed.

The gateway signs ES256 tokens with a key it creates on first use in its data directory
(readable by its user only); ``python -m app token USER`` prints one. Instances that share the
key file accept each other's tokens. Tokens use Keycloak's claim layout, so the code after
verification is the same in both identity modes.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from app.auth.errors import InvalidToken
from app.auth.principal import Principal, from_claims

ISSUER = "tusgate-local"
ALGORITHM = "ES256"
DEFAULT_LEEWAY_SECONDS = 30


class LocalIssuer:
    def __init__(self, key: ECKey, leeway_seconds: int = DEFAULT_LEEWAY_SECONDS) -> None:
        self._key = key
        self._claims = jwt.JWTClaimsRegistry(
            leeway=leeway_seconds,
            iss={"essential": True, "value": ISSUER},
            sub={"essential": True},
            exp={"essential": True},
        )

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
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user,
            "preferred_username": user,
            "realm_access": {"roles": roles},
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({"alg": ALGORITHM, "kid": self._key.kid}, claims, self._key)

    async def verify(self, token: str) -> Principal:
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
            self._claims.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidToken(exc.description or exc.error) from exc
        except ValueError as exc:
            raise InvalidToken("malformed token") from exc
        return from_claims(decoded.claims)
