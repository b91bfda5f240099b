"""Session-wide test services, started only when a test asks for them, and per-test views of them.

Each service is one process for the whole run; tests isolate themselves through a fresh database,
a flushed Redis and a fresh bucket instead of fresh processes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateways import (
    StartTarget,
    Target,
    embedded_env,
    new_user,
    services_env,
    start_target,
)
from tests.oidc_provider import OIDCProvider
from tests.services import MotoServer, PostgresServer, RedisServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database of the session cluster."""
    return postgres.new_database()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def s3_bucket(s3_server: MotoServer) -> tuple[str, str]:
    """(endpoint URL, bucket name): an empty S3 holding only this new bucket."""
    s3_server.reset()
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    return s3_server.endpoint_url, bucket


@pytest.fixture
def user() -> str:
    """A user of its own for each test: tests against a shared gateway never see each other."""
    return new_user()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=120, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def provider() -> Iterator[OIDCProvider]:
    """The stand-in OpenID provider (tests/oidc_provider.py)."""
    with OIDCProvider() as running:
        yield running


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
    running = start_target(request.param, _env(request, request.param, data_dir, "gateway_s3"))
    yield running
    running.close()


def _env(request: pytest.FixtureRequest, kind: str, data_dir: Path, s3: str) -> dict[str, str]:
    """A gateway's environment; a ``services`` one starts its services (``s3``: which S3
    server fixture) now, so that tests of embedded gateways alone never wait for them."""
    if kind == "embedded":
        return embedded_env(data_dir)
    return services_env(
        data_dir,
        request.getfixturevalue("postgres"),
        request.getfixturevalue("redis_server"),
        request.getfixturevalue(s3),
    )


@pytest.fixture
def own_s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartTarget]:
    """``start(kind, instances=1, **env)``: gateways of the test's own, closed after it, for
    tests that kill, restart, measure or configure them (a ``services`` one with an S3 server
    of the test's own)."""
    started: list[Target] = []

    def starter(kind: str, instances: int = 1, **extra: str) -> Target:
        data_dir = tmp_path / f"{kind}-{len(started)}"
        data_dir.mkdir()
        env = _env(request, kind, data_dir, "own_s3")
        target = start_target(kind, {**env, **extra}, instances)
        started.append(target)
        return target

    yield starter
    for target in started:
        target.close()
