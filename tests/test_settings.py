"""Locations and download settings: read from the TOML file and the environment, validated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import load_settings


def test_locations_are_hot_first_priority_and_deletable_by_default() -> None:
    settings = load_settings({})
    [location] = settings.locations
    assert (location.kind, location.priority, location.allow_physical_deletion) == ("hot", 0, True)
    assert settings.link_ttl_seconds == 3600


def test_a_toml_file_sets_kind_priority_and_physical_deletion(tmp_path: Path) -> None:
    config = tmp_path / "tusgate.toml"
    config.write_text(
        "upload_location = 'fast'\n"
        "[[locations]]\nname = 'archive'\nkind = 'cold'\npriority = 3\n"
        "allow_physical_deletion = false\n"
        "[[locations]]\nname = 'fast'\npriority = 1\n"
    )
    settings = load_settings({"TUSGATE_CONFIG": str(config), "TUSGATE_LINK_TTL_SECONDS": "600"})
    archive, fast = settings.locations
    assert (archive.kind, archive.priority, archive.allow_physical_deletion) == ("cold", 3, False)
    assert (fast.kind, fast.priority, fast.allow_physical_deletion) == ("hot", 1, True)
    assert settings.link_ttl_seconds == 600


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[[locations]]\nname = 'a'\nkind = 'warm'\n", "kind must be one of"),
        ("[[locations]]\nname = 'a'\npriority = -1\n", "priority must not be negative"),
        ("[[locations]]\nname = 'a'\npriority = 'high'\n", "priority"),
        ("[[locations]]\nname = 'a'\nkind = 'cold'\n", "must be a hot location"),
        ("link_ttl_seconds = 0\n", "link_ttl_seconds must be at least 1"),
    ],
)
def test_invalid_location_settings_are_refused(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "tusgate.toml"
    config.write_text(toml)
    with pytest.raises(ValueError, match=message):
        load_settings({"TUSGATE_CONFIG": str(config)})
