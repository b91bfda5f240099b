"""Which copy is read: hot before cold, then by priority; the ordering alone, then on a gateway
whose file has copies in two locations."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from app.db.downloads import StoredCopy
from app.download.choice import readable_copies
from app.settings import LocationSettings, Settings
from tests.download.client import audit, fetch, store
from tests.gateways import StartTarget, Target, new_user


def test_hot_before_cold_then_by_priority_then_by_name() -> None:
    settings = Settings(
        locations=(
            LocationSettings(name="archive", kind="cold", priority=0),
            LocationSettings(name="slow", priority=2),
            LocationSettings(name="fast", priority=1),
            LocationSettings(name="also-fast", priority=1),
        ),
    )
    copies = [
        StoredCopy(name, f"key-{name}", "online")
        for name in ("archive", "slow", "fast", "also-fast")
    ]
    ordered = readable_copies(copies, settings)
    assert [copy.location for copy in ordered] == ["also-fast", "fast", "slow", "archive"]


def test_copies_that_cannot_be_read_now_are_left_out() -> None:
    settings = Settings(locations=(LocationSettings(name="hot"), LocationSettings(name="cold")))
    copies = [
        StoredCopy("cold", "k1", "restoring"),
        StoredCopy("gone", "k2", "online"),  # a location the settings no longer name
        StoredCopy("hot", "k3", "online"),
    ]
    assert readable_copies(copies, settings) == [StoredCopy("hot", "k3", "online")]


def _configure(path: Path, upload_to: str, a: str, b: str) -> None:
    path.write_text(
        f"upload_location = '{upload_to}'\n"
        f"[[locations]]\nname = 'a'\n{a}\n"
        f"[[locations]]\nname = 'b'\n{b}\n"
    )


def _restart(target: Target, config: Path, upload_to: str, a: str, b: str) -> None:
    _configure(config, upload_to, a, b)
    target.gateway.stop()
    target.gateway.start()


def _served_from(http: httpx.Client, target: Target, user: str, checksum: str) -> object:
    assert fetch(http, target, user, checksum).status_code == 200
    latest = audit(http, target, sha256=checksum, action="file.downloaded")[0]
    return latest["detail"]["location"]  # type: ignore[index]


def test_a_gateway_reads_the_best_of_two_copies(
    start: StartTarget, user: str, http: httpx.Client, tmp_path: Path
) -> None:
    config = tmp_path / "tusgate.toml"
    _configure(config, "a", "priority = 1", "priority = 0")
    target = start("embedded", TUSGATE_CONFIG=str(config))
    body = os.urandom(1000)
    checksum = store(http, target, user, body)
    assert _served_from(http, target, user, checksum) == "a"  # the only copy

    # The same bytes uploaded into b give the file a second copy.
    _restart(target, config, "b", "priority = 1", "priority = 0")
    store(http, target, new_user(), body)
    assert _served_from(http, target, user, checksum) == "b"

    _restart(target, config, "a", "priority = 0", "priority = 1")
    assert _served_from(http, target, user, checksum) == "a"

    _restart(target, config, "a", "priority = 5", "kind = 'cold'\npriority = 0")  # hot first
    assert _served_from(http, target, user, checksum) == "a"
