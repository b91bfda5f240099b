"""Gateways under test: a real ``python -m app serve`` on each combination of backends.

``embedded`` is what a user gets with no configuration (SQLite, filesystem store, in-process
locks); ``services`` is the production shape (PostgreSQL, Redis locks, S3). Tests talk to them
over HTTP only, with tokens from the gateway's own local issuer key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.auth.local import LocalIssuer
from tests.services import (
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    Gateway,
    MotoServer,
    PostgresServer,
    RedisServer,
)

TUS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Target:
    name: str
    gateways: list[Gateway]
    issuer: LocalIssuer
    env: dict[str, str]

    @property
    def gateway(self) -> Gateway:
        return self.gateways[0]

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def files_url(self) -> str:
        return f"{self.url}/files/"

    def token(self, user: str, roles: tuple[str, ...] = ()) -> str:
        return self.issuer.issue(user, list(roles), 3600)

    def close(self) -> None:
        for gateway in self.gateways:
            gateway.close()

    def headers(self, user: str, *, roles: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
        """tus + bearer headers; keyword names use underscores for dashes (Upload_Length=...)."""
        headers = {**TUS, "Authorization": f"Bearer {self.token(user, roles)}"}
        headers.update({name.replace("_", "-"): value for name, value in extra.items()})
        return headers


StartTarget = Callable[..., Target]  # the `start` fixture (tests/conftest.py)


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def embedded_env(data_dir: Path) -> dict[str, str]:
    return {"TUSGATE_DATA_DIR": str(data_dir)}


def services_env(
    data_dir: Path, postgres: PostgresServer, redis: RedisServer, s3: MotoServer
) -> dict[str, str]:
    bucket = f"gw-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    return {
        "TUSGATE_DATA_DIR": str(data_dir),
        "TUSGATE_DATABASE_URL": postgres.new_database(),
        # Database 1: the tests' own Redis fixture flushes database 0 between tests.
        "TUSGATE_REDIS_URL": redis.url.rsplit("/", 1)[0] + "/1",
        # A stream of its own: its cursor follows this gateway's database only.
        "TUSGATE_EVENTS_STREAM": f"tusgate:events:{bucket}",
        "TUSGATE_STORE": "s3",
        "TUSGATE_S3_ENDPOINT_URL": s3.endpoint_url,
        "TUSGATE_S3_BUCKET": bucket,
        "TUSGATE_S3_ACCESS_KEY": S3_ACCESS_KEY,
        "TUSGATE_S3_SECRET_KEY": S3_SECRET_KEY,
    }


def start_target(name: str, env: dict[str, str], instances: int = 1) -> Target:
    """Start ``instances`` gateways sharing ``env`` (and so one database, store and key)."""
    data_dir = Path(env["TUSGATE_DATA_DIR"])
    key_file = data_dir / "local-issuer.jwk"
    issuer = LocalIssuer.from_file(key_file)
    env = {**env, "TUSGATE_LOCAL_ISSUER_KEY_FILE": str(key_file)}
    gateways: list[Gateway] = []
    try:
        for _ in range(instances):
            gateway = Gateway(env)
            gateway.start()
            gateways.append(gateway)
    except BaseException:
        for gateway in gateways:
            gateway.close()
        raise
    return Target(name, gateways, issuer, env)
