"""The production topology on real processes: nginx (TLS, HTTP/2) in front of two gateway
instances sharing PostgreSQL, Redis and an S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.gateways import StartTarget, Target
from tests.proxy import Nginx
from tests.web.conftest import browser  # noqa: F401  (the page's Chromium, shared)


@dataclass
class Stack:
    target: Target  # the gateways (target.gateways), reached directly
    nginx: Nginx

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def files_url(self) -> str:
        return f"{self.nginx.url}/files/"


@pytest.fixture
def stack(start: StartTarget) -> Iterator[Stack]:
    target = start(
        "services",
        instances=2,
        TUSGATE_TRUSTED_PROXIES="127.0.0.1",
        TUSGATE_SHUTDOWN_TIMEOUT_SECONDS="20",
        TUSGATE_EVENTS_INTERVAL_SECONDS="0.2",
    )
    upstreams = [gateway.url.removeprefix("http://") for gateway in target.gateways]
    with Nginx(upstreams) as nginx:
        yield Stack(target, nginx)


@pytest.fixture
def https(stack: Stack) -> Iterator[httpx.Client]:
    """A client of the stack that trusts its throwaway certificate."""
    with httpx.Client(timeout=120, verify=stack.nginx.trusting(), trust_env=False) as client:
        yield client
