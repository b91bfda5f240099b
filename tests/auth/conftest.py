"""Fixtures of the identity tests: the stand-in OpenID provider, its realms, OIDC gateways."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.gateways import Target, embedded_env, start_target
from tests.oidc_provider import OIDCProvider, Realm

StartGateway = Callable[..., Target]


def oidc_env(data_dir: Path, issuer: str, **settings: str) -> dict[str, str]:
    """An embedded gateway in OIDC mode; ``settings`` are further TUSGATE_* variables."""
    return {**embedded_env(data_dir), "TUSGATE_OIDC_ISSUER": issuer, **settings}


@pytest.fixture
def realm(provider: OIDCProvider) -> Realm:
    """A realm of this test's own: its keys, rotations and fetch counts are nobody else's."""
    return provider.new_realm()


@pytest.fixture
def other_realm(provider: OIDCProvider) -> Realm:
    """Another issuer with keys of its own, like a second Keycloak realm."""
    return provider.new_realm()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[StartGateway]:
    """``start_gateway(issuer, **env)``: a gateway of this test's own, closed after it; in OIDC
    mode for that issuer, or in local mode for ``None``."""
    started: list[Target] = []

    def starter(issuer: str | None, **settings: str) -> Target:
        data_dir = tmp_path / f"gateway-{len(started)}"
        data_dir.mkdir()
        env = {**embedded_env(data_dir), **settings}
        if issuer is not None:
            env = oidc_env(data_dir, issuer, **settings)
        target = start_target("oidc" if issuer else "local", env)
        started.append(target)
        return target

    yield starter
    for target in started:
        target.close()
