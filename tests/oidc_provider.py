"""A stand-in OpenID provider, run as its own process: ``python -m tests.oidc_provider PORT``.

It speaks just enough Keycloak for the gateway: realms under ``/realms/{realm}``, each with its
own signing key, discovery and JWKS (``/protocol/openid-connect/certs``, which also lists an
encryption key, as Keycloak's does), and tokens in Keycloak's claim layout. Instead of logins,
tests ask for tokens directly and steer the realm:

- ``PUT /realms/{realm}`` creates a realm: ``{"algorithm": "RS256"}``; a ``"discovery_issuer"``
  makes its discovery document name another issuer.
- ``POST /realms/{realm}/token`` answers like Keycloak's token endpoint, ``{"access_token": …}``,
  for a JSON body: ``grant`` (``password``, the default, or ``client_credentials`` for the
  service-account layout: ``azp`` = client, ``preferred_username`` = ``service-account-<client>``),
  ``username``, ``client_id``, ``realm_roles`` (default ``["user"]``), ``client_roles``
  (``{client: [roles]}``), ``ttl``, and ``claims`` / ``header`` laid over the result last (a
  ``null`` value removes the entry).
- ``POST /realms/{realm}/rotate``: a new key with a new kid; the old one leaves the JWKS.
- ``PUT /realms/{realm}/failure`` ``{"status": 500}``: discovery and JWKS answer that status
  from now on (``null``: normal again).
- ``GET /realms/{realm}/stats``: how many times discovery and the JWKS were fetched.
- ``GET /realms/{realm}/logins``: how many browser logins and refresh grants there were.

For a browser (keycloak-js), a realm also has Keycloak's authorization code flow with PKCE:
``/protocol/openid-connect/auth`` signs in the realm's ``browser_user`` at once (no login form)
and redirects back with a code; ``/protocol/openid-connect/token`` exchanges it (checking the
code verifier) and refreshes tokens, with access tokens valid ``access_ttl`` seconds.

``OIDCProvider`` runs the process for the tests; ``Realm`` is their handle on one realm.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.services import (
    REPO_ROOT,
    _Service,
    _stop_process,
    _wait_for_process,
    free_port,
    http_status,
)

AUDIENCE = "tusgate"
CURVES: dict[str, Any] = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def new_key(algorithm: str, *, use: str = "sig") -> Key:
    parameters: Any = {"alg": algorithm, "use": use, "kid": uuid.uuid4().hex}
    if algorithm.startswith(("RS", "PS", "RSA-")):
        return RSAKey.generate_key(2048, parameters)
    if algorithm in CURVES:
        return ECKey.generate_key(CURVES[algorithm], parameters)
    return OKPKey.generate_key("Ed448" if algorithm == "Ed448" else "Ed25519", parameters)


@dataclass
class RealmState:
    algorithm: str
    key: Key
    discovery_issuer: str | None = None
    failure: int | None = None
    fetches: dict[str, int] = field(default_factory=lambda: {"discovery": 0, "jwks": 0})
    logins: dict[str, int] = field(default_factory=lambda: {"login": 0, "refresh": 0})
    browser_user: str = "alice"
    access_ttl: int = 300
    codes: dict[str, dict[str, str]] = field(default_factory=dict)  # code → the login


def create_app(base_url: str) -> Starlette:
    realms: dict[str, RealmState] = {}
    encryption_key = new_key("RSA-OAEP", use="enc")

    def issuer(name: str) -> str:
        return f"{base_url}/realms/{name}"

    def realm_of(request: Request) -> RealmState:
        name = request.path_params["realm"]
        if name not in realms:
            raise LookupError(name)
        return realms[name]

    async def put_realm(request: Request) -> Response:
        body = await request.json()
        algorithm = body.get("algorithm", "RS256")
        realms[request.path_params["realm"]] = RealmState(
            algorithm,
            new_key(algorithm),
            body.get("discovery_issuer"),
            browser_user=body.get("browser_user", "alice"),
            access_ttl=int(body.get("access_ttl", 300)),
        )
        return JSONResponse({"issuer": issuer(request.path_params["realm"])}, status_code=201)

    def served(request: Request, what: str) -> RealmState:
        realm = realm_of(request)
        realm.fetches[what] += 1
        return realm

    async def discovery(request: Request) -> Response:
        realm = served(request, "discovery")
        if realm.failure is not None:
            return PlainTextResponse("failing on purpose", status_code=realm.failure)
        own = issuer(request.path_params["realm"])
        return JSONResponse(
            {
                "issuer": realm.discovery_issuer or own,
                "jwks_uri": f"{own}/protocol/openid-connect/certs",
                "token_endpoint": f"{own}/protocol/openid-connect/token",
                "id_token_signing_alg_values_supported": [realm.algorithm],
            }
        )

    async def certs(request: Request) -> Response:
        realm = served(request, "jwks")
        if realm.failure is not None:
            return PlainTextResponse("failing on purpose", status_code=realm.failure)
        keys = [realm.key.as_dict(private=False), encryption_key.as_dict(private=False)]
        return JSONResponse({"keys": keys})

    async def token(request: Request) -> Response:
        realm = realm_of(request)
        name = request.path_params["realm"]
        body: dict[str, Any] = await request.json()
        header = _overlay(
            {"alg": realm.algorithm, "typ": "JWT", "kid": realm.key.kid}, body.get("header", {})
        )
        claims = _overlay(_keycloak_claims(issuer(name), name, body), body.get("claims", {}))
        signed = jwt.encode(header, claims, realm.key, algorithms=[header["alg"]])
        ttl = int(body.get("ttl", 300))
        return JSONResponse({"access_token": signed, "token_type": "Bearer", "expires_in": ttl})

    async def authorize(request: Request) -> Response:
        """The login page, which logs the realm's browser user in at once."""
        realm = realm_of(request)
        realm.logins["login"] += 1
        query = request.query_params
        code = uuid.uuid4().hex
        realm.codes[code] = {
            "client_id": query["client_id"],
            "redirect_uri": query["redirect_uri"],
            "challenge": query["code_challenge"],
            "nonce": query.get("nonce", ""),
        }
        answer = {"state": query["state"], "session_state": uuid.uuid4().hex, "code": code}
        separator = "#" if query.get("response_mode", "fragment") == "fragment" else "?"
        return RedirectResponse(f"{query['redirect_uri']}{separator}{urlencode(answer)}", 302)

    async def browser_token(request: Request) -> Response:
        """Keycloak's token endpoint for a browser: a code (PKCE) or a refresh token."""
        realm = realm_of(request)
        name = request.path_params["realm"]
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") == "authorization_code":
            login = realm.codes.pop(str(form.get("code")), None)
            verifier = str(form.get("code_verifier", ""))
            if login is None or _challenge(verifier) != login["challenge"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            client_id, nonce = login["client_id"], login["nonce"]
        elif form.get("grant_type") == "refresh_token":
            realm.logins["refresh"] += 1
            client_id, nonce = str(form.get("client_id")), ""
        else:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        own = issuer(name)
        body = {"username": realm.browser_user, "client_id": client_id, "ttl": realm.access_ttl}
        access = _keycloak_claims(own, name, body)
        session = {"iss": own, "sub": access["sub"], "azp": client_id, "iat": access["iat"]}
        id_token = {**session, "aud": client_id, "exp": access["exp"], "typ": "ID"}
        refresh = {**session, "aud": own, "exp": access["iat"] + 1800, "typ": "Refresh"}
        if nonce:
            id_token["nonce"] = nonce
        header = {"alg": realm.algorithm, "typ": "JWT", "kid": realm.key.kid}

        def sign(claims: dict[str, Any]) -> str:
            return jwt.encode(header, {**claims, "jti": str(uuid.uuid4())}, realm.key)

        return JSONResponse(
            {
                "access_token": sign(access),
                "id_token": sign(id_token),
                "refresh_token": sign(refresh),
                "token_type": "Bearer",
                "expires_in": realm.access_ttl,
                "refresh_expires_in": 1800,
            }
        )

    async def rotate(request: Request) -> Response:
        realm = realm_of(request)
        realm.key = new_key(realm.algorithm)
        return JSONResponse({"kid": realm.key.kid})

    async def failure(request: Request) -> Response:
        realm_of(request).failure = (await request.json())["status"]
        return Response(status_code=204)

    async def stats(request: Request) -> Response:
        return JSONResponse(realm_of(request).fetches)

    async def logins(request: Request) -> Response:
        return JSONResponse(realm_of(request).logins)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def unknown_realm(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "Realm does not exist"}, status_code=404)

    prefix = "/realms/{realm}"
    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route(prefix, put_realm, methods=["PUT"]),
            Route(f"{prefix}/.well-known/openid-configuration", discovery),
            Route(f"{prefix}/protocol/openid-connect/certs", certs),
            Route(f"{prefix}/protocol/openid-connect/auth", authorize),
            Route(f"{prefix}/protocol/openid-connect/token", browser_token, methods=["POST"]),
            Route(f"{prefix}/token", token, methods=["POST"]),
            Route(f"{prefix}/rotate", rotate, methods=["POST"]),
            Route(f"{prefix}/failure", failure, methods=["PUT"]),
            Route(f"{prefix}/stats", stats),
            Route(f"{prefix}/logins", logins),
        ],
        exception_handlers={LookupError: unknown_realm},
        # The page's origin calls the token endpoint, as browsers call Keycloak's.
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origin_regex=".*",
                allow_methods=["POST"],
                allow_credentials=True,
            )
        ],
    )


def _keycloak_claims(issuer: str, realm: str, body: dict[str, Any]) -> dict[str, Any]:
    """An access token's claims as Keycloak lays them out, with the tusgate audience mapper."""
    now = int(time.time())
    service = body.get("grant", "password") == "client_credentials"
    client_id = body.get("client_id", "tusgate-cli" if service else "tusgate-web")
    username = f"service-account-{client_id}" if service else body.get("username", "alice")
    realm_roles = [f"default-roles-{realm}", "offline_access", *body.get("realm_roles", ["user"])]
    claims: dict[str, Any] = {
        "exp": now + int(body.get("ttl", 300)),
        "iat": now,
        "jti": str(uuid.uuid4()),
        "iss": issuer,
        # Keycloak writes a single audience as a string, several as a list.
        "aud": AUDIENCE if service else [AUDIENCE, "account"],
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer}/{username}")),
        "typ": "Bearer",
        "azp": client_id,
        "acr": "1",
        "realm_access": {"roles": realm_roles},
        "resource_access": {
            "account": {"roles": ["manage-account", "view-profile"]},
            **{client: {"roles": roles} for client, roles in body.get("client_roles", {}).items()},
        },
        "scope": "profile email",
        "email_verified": not service,
        "preferred_username": username,
    }
    if service:
        claims.update(client_id=client_id, clientHost="127.0.0.1", clientAddress="127.0.0.1")
    else:
        claims.update(sid=str(uuid.uuid4()), email=f"{username}@example.org")
    return claims


def _challenge(verifier: str) -> str:
    """PKCE S256: the code challenge a code verifier answers."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _overlay(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **changes}
    return {name: value for name, value in merged.items() if value is not None}


@dataclass
class Realm:
    """The tests' handle on one realm of a running provider."""

    name: str
    issuer: str
    http: httpx.Client

    def _call(self, method: str, path: str, **options: Any) -> Any:
        response = self.http.request(method, f"{self.issuer}{path}", **options)
        response.raise_for_status()
        return response.json() if response.content else None

    def token(self, **request: Any) -> str:
        """A signed access token; ``request`` is the token endpoint's JSON body (see above)."""
        return str(self._call("POST", "/token", json=request)["access_token"])

    def service_token(self, client_id: str = "tusgate-cli", **request: Any) -> str:
        return self.token(grant="client_credentials", client_id=client_id, **request)

    def rotate(self) -> str:
        """Replace the signing key; the new key's id."""
        return str(self._call("POST", "/rotate")["kid"])

    def fail(self, status: int | None) -> None:
        self._call("PUT", "/failure", json={"status": status})

    def stats(self) -> dict[str, int]:
        fetches: dict[str, int] = self._call("GET", "/stats")
        return fetches

    def logins(self) -> dict[str, int]:
        counts: dict[str, int] = self._call("GET", "/logins")
        return counts

    def jwks(self) -> dict[str, Any]:
        document: dict[str, Any] = self._call("GET", "/protocol/openid-connect/certs")
        return document


class OIDCProvider(_Service):
    """The stand-in provider as a separate process on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tusgate-oidc-"))
        self.log_path = self.root / "provider.log"
        self.http = httpx.Client(timeout=30, trust_env=False)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        return http_status("GET", f"{self.url}/healthz") == 200

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.oidc_provider", str(self.port)],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_for_process(self._proc, self._answers, what="OIDC provider", log_path=self.log_path)

    def new_realm(
        self, algorithm: str = "RS256", *, discovery_issuer: str | None = None, **browser: Any
    ) -> Realm:
        """A realm of its own, so that tests which rotate keys or count fetches never meet;
        ``browser``: ``browser_user``, ``access_ttl`` of the code flow."""
        name = f"realm-{uuid.uuid4().hex[:10]}"
        body: dict[str, Any] = {"algorithm": algorithm, **browser}
        if discovery_issuer is not None:
            body["discovery_issuer"] = discovery_issuer
        response = self.http.put(f"{self.url}/realms/{name}", json=body)
        response.raise_for_status()
        return Realm(name, response.json()["issuer"], self.http)

    def close(self) -> None:
        try:
            if self._proc is not None:
                _stop_process(self._proc)
                self._proc = None
        finally:
            self.http.close()
            shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = int(sys.argv[1])
    # Signing with "EdDSA" warns that RFC 9864 renamed it; the provider signs what it is told.
    warnings.simplefilter("ignore", SecurityWarning)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        app = create_app(f"http://127.0.0.1:{port}")
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


if __name__ == "__main__":
    main()
