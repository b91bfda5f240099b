"""One gateway per backend combination for the whole protocol suite; tests isolate by user."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateways import Target, embedded_env, services_env, start_target
from tests.services import MotoServer


@pytest.fixture(scope="session")
def gateway_s3() -> Iterator[MotoServer]:
    """An S3 server of the gateways' own, never reset by storage tests."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session", params=["embedded", "services"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    data_dir = tmp_path_factory.mktemp(f"gateway-{request.param}")
    if request.param == "embedded":
        env = embedded_env(data_dir)
    else:
        env = services_env(
            data_dir,
            request.getfixturevalue("postgres"),
            request.getfixturevalue("redis_server"),
            request.getfixturevalue("gateway_s3"),
        )
    running = start_target(request.param, env)
    yield running
    for gateway in running.gateways:
        gateway.close()
