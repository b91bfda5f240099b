"""docker-compose.yml and the Dockerfile, read as data: no Docker engine runs here, so what an
engine would refuse or what would only fail at run time is checked against the files it
names — the nginx template, the settings the gateway knows, the Dockerfile's stages. The same
topology runs for real in test_nginx.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from app.settings import _ENV
from tests.proxy import TEMPLATE
from tests.services import REPO_ROOT

SETTINGS = set(_ENV) | {"TUSGATE_CONFIG"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def _stages() -> set[str]:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    return set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE))


def test_the_stack_has_every_part(services: dict[str, Any]) -> None:
    assert set(services) == {
        "postgres",
        "redis",
        "minio",
        "keycloak",
        "tusgate-init",
        "tusgate-1",
        "tusgate-2",
        "nginx",
    }


def test_start_order_waits_for_health_and_the_one_off_init(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for needed, rule in service.get("depends_on", {}).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            condition = rule["condition"]
            if condition == "service_healthy":
                health = services[needed].get("healthcheck", {})
                built = "build" in services[needed]  # the gateway image has a HEALTHCHECK
                assert built or health.get("test"), f"{needed} has no health check"
            else:
                assert condition == "service_completed_successfully"
                assert services[needed]["restart"] == "no"


def test_what_must_survive_a_restart_is_on_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    mounts = {
        name: [volume.split(":")[1] for volume in service.get("volumes", [])]
        for name, service in compose["services"].items()
    }
    assert "/var/lib/postgresql/data" in mounts["postgres"]
    assert "/data" in mounts["redis"]
    assert "/data" in mounts["minio"]


def test_gateways_are_built_from_the_dockerfile_and_set_known_settings_only(
    services: dict[str, Any],
) -> None:
    stages = _stages()
    assert {"page", "proxy", "gateway"} <= stages
    for name in ("tusgate-init", "tusgate-1", "tusgate-2"):
        service = services[name]
        assert service["build"]["target"] == "gateway"
        unknown = set(service["environment"]) - SETTINGS
        assert unknown == set(), f"{name} sets settings the gateway does not know: {unknown}"
        assert service["environment"]["TUSGATE_REDIS_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in service["environment"]["TUSGATE_DATABASE_URL"]
    assert services["nginx"]["build"]["target"] == "proxy"


def test_nginx_gets_every_parameter_of_its_template_and_both_gateways(
    services: dict[str, Any],
) -> None:
    nginx = services["nginx"]["environment"]
    wanted = set(re.findall(r"\$\{(TUSGATE_[A-Z_]+)\}", TEMPLATE.read_text()))
    assert wanted == set(nginx)
    upstreams = re.findall(r"server (\S+):8080", nginx["TUSGATE_UPSTREAM_SERVERS"])
    assert upstreams == ["tusgate-1", "tusgate-2"]
    assert set(upstreams) <= set(services)


def test_the_image_runs_as_a_user_and_checks_its_health() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    gateway = dockerfile.split("AS gateway", 1)[1]
    assert re.search(r"^USER (?!root)\S+$", gateway, re.MULTILINE)
    assert "HEALTHCHECK" in gateway
    assert "/readyz" in gateway
    # The runtime installs what pyproject asks for, pinned by the lock file, and no test tool.
    assert "--constraint requirements.lock ." in gateway
