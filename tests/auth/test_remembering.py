"""Tokens accepted once are taken again without a signature check until they expire
(app/auth/middleware.py: remembering); refused or expired ones are always verified anew."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.auth.errors import InvalidToken
from app.auth.local import LocalIssuer
from app.auth.middleware import remembering
from app.auth.principal import Principal

pytestmark = pytest.mark.anyio


class Counting:
    """A verifier that says who each token is, expiring at ``expires_at``, and counts calls."""

    def __init__(self, expires_at: float | None, refuse: bool = False) -> None:
        self.expires_at = expires_at
        self.refuse = refuse
        self.calls: list[str] = []

    async def __call__(self, token: str) -> Principal:
        self.calls.append(token)
        if self.refuse:
            raise InvalidToken("bad signature")
        return Principal(id=token, name=token, roles=frozenset(), expires_at=self.expires_at)


async def test_an_accepted_token_is_verified_once_until_it_expires() -> None:
    inner = Counting(expires_at=time.time() + 3600)
    verify = remembering(inner)
    assert [(await verify("a")).id for _ in range(3)] == ["a", "a", "a"]
    assert inner.calls == ["a"]


async def test_an_expired_token_is_verified_again() -> None:
    inner = Counting(expires_at=time.time() - 1)
    verify = remembering(inner)
    await verify("a")
    await verify("a")
    assert inner.calls == ["a", "a"]


async def test_a_refused_token_is_not_remembered() -> None:
    inner = Counting(expires_at=time.time() + 3600, refuse=True)
    verify = remembering(inner)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            await verify("a")
    assert inner.calls == ["a", "a"]


async def test_the_least_recently_used_token_goes_first() -> None:
    inner = Counting(expires_at=time.time() + 3600)
    verify = remembering(inner, capacity=2)
    for token in ("a", "b", "a", "c", "a", "b"):
        await verify(token)
    assert inner.calls == ["a", "b", "c", "b"]


async def test_the_local_issuers_tokens_carry_their_expiry(tmp_path: Path) -> None:
    issuer = LocalIssuer.from_file(tmp_path / "issuer.jwk")
    before = int(time.time())
    principal = await issuer.verify(issuer.issue("alice", [], 600))
    assert principal.expires_at is not None
    assert before + 600 <= principal.expires_at <= time.time() + 600


async def test_a_token_without_expiry_is_not_remembered() -> None:
    inner = Counting(expires_at=None)
    verify = remembering(inner)
    await verify("a")
    await verify("a")
    assert inner.calls == ["a", "a"]
