"""The bearer middleware's answers to each refusal, on a tiny inline app with stub verifiers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.auth.errors import AuthError, InvalidToken, ProviderUnavailable
from app.auth.middleware import BearerAuth, Verifier, require_role
from app.auth.principal import Principal

pytestmark = pytest.mark.anyio


async def whoami(request: Request) -> Response:
    return PlainTextResponse(request.user.name)


@asynccontextmanager
async def client(verify: Verifier) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(
        routes=[Route("/whoami", whoami, methods=["GET", "HEAD"])],
        middleware=[Middleware(BearerAuth, verify=verify, public_paths=frozenset())],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


def refusing(error: AuthError) -> Verifier:
    async def verify(token: str) -> Principal:
        raise error

    return verify


def holding(*roles: str) -> Verifier:
    async def verify(token: str) -> Principal:
        return Principal(id=token, name=token, roles=frozenset(roles))

    return verify


async def get(verify: Verifier, method: str = "GET") -> httpx.Response:
    async with client(verify) as http:
        return await http.request(method, "/whoami", headers={"Authorization": "Bearer tok"})


async def test_invalid_token_is_401_with_an_escaped_reason() -> None:
    response = await get(refusing(InvalidToken('bad "quoted" \\ reason')))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="bad \\"quoted\\" \\\\ reason"'
    )
    assert response.text == 'unauthorized: bad "quoted" \\ reason\n'
    assert "retry-after" not in response.headers


async def test_missing_token_never_reaches_the_verifier() -> None:
    async with client(refusing(ProviderUnavailable("must not be asked"))) as http:
        response = await http.get("/whoami", headers={"Authorization": "Basic YTpi"})
    assert response.status_code == 401
    assert "missing bearer token" in response.headers["www-authenticate"]


async def test_provider_unavailable_is_503_with_retry_after_and_no_challenge() -> None:
    response = await get(refusing(ProviderUnavailable("JWKS unreachable", retry_after=7)))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert "www-authenticate" not in response.headers
    assert response.text == "identity provider unavailable: JWKS unreachable\n"


async def test_head_refusals_have_no_body() -> None:
    response = await get(refusing(InvalidToken("expired")), method="HEAD")
    assert response.status_code == 401
    assert response.content == b""


@pytest.mark.parametrize(
    ("roles", "admin_role", "status"),
    [
        (("user",), "admin", 200),
        (("admin",), "admin", 200),
        (("user", "admin"), "admin", 200),
        (("guest",), "admin", 403),
        ((), "admin", 403),
        (("admin",), "", 403),  # no admin role configured: nobody bypasses the rule
    ],
)
async def test_require_role(roles: tuple[str, ...], admin_role: str, status: int) -> None:
    response = await get(require_role(holding(*roles), "user", admin_role))
    assert response.status_code == status
    if status == 403:
        assert response.headers["www-authenticate"] == (
            'Bearer error="insufficient_scope", '
            "error_description=\"the token lacks the role 'user'\""
        )
    else:
        assert response.text == "tok"
