"""End-to-end fixtures: gateways of their own per test, since these tests kill and measure them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.gateways import Target, embedded_env, services_env, start_target
from tests.services import MotoServer, PostgresServer, RedisServer

StartTarget = Callable[..., Target]


@pytest.fixture
def own_s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def start(
    tmp_path: Path,
    postgres: PostgresServer,
    redis_server: RedisServer,
    own_s3: MotoServer,
) -> Iterator[StartTarget]:
    """``start(kind, instances=1, **env)``: gateways that are closed after the test."""
    started: list[Target] = []

    def starter(kind: str, instances: int = 1, **extra: str) -> Target:
        data_dir = tmp_path / f"{kind}-{len(started)}"
        data_dir.mkdir()
        if kind == "embedded":
            env = embedded_env(data_dir)
        else:
            env = services_env(data_dir, postgres, redis_server, own_s3)
        target = start_target(kind, {**env, **extra}, instances)
        started.append(target)
        return target

    yield starter
    for target in started:
        for gateway in target.gateways:
            gateway.close()
