"""Locations and download settings: read from the TOML file and the environment, validated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import load_settings


def test_the_embedded_default_has_a_hot_and_a_cold_filesystem_location() -> None:
    settings = load_settings({})
    local, archive = settings.locations
    assert (local.kind, local.priority, local.allow_physical_deletion) == ("hot", 0, True)
    assert (archive.kind, archive.backend, archive.copy_after_days) == ("cold", "filesystem", 0)
    assert archive.storage_class == "GLACIER"  # were it S3
    assert settings.upload_location == "local"
    assert settings.link_ttl_seconds == 3600
    assert settings.cache.backend == "filesystem"


def test_beside_an_s3_store_the_default_has_no_cold_directory() -> None:
    [local] = load_settings({"TUSGATE_STORE": "s3"}).locations
    assert (local.backend, local.storage_class) == ("s3", "STANDARD")


def test_the_cache_and_download_quotas_are_configurable(tmp_path: Path) -> None:
    config = tmp_path / "tusgate.toml"
    config.write_text(
        "cache_max_bytes = 1000\n[cache]\nbackend = 's3'\n[cache.s3]\nbucket = 'restored'\n"
    )
    settings = load_settings(
        {
            "TUSGATE_CONFIG": str(config),
            "TUSGATE_QUOTA_MAX_DOWNLOADS": "none",
            "TUSGATE_QUOTA_MAX_CONCURRENT_DOWNLOADS": "3",
            "TUSGATE_CACHE_TTL_HOURS": "1.5",
        }
    )
    assert (settings.cache.backend, settings.cache.s3.bucket) == ("s3", "restored")
    assert (settings.cache_max_bytes, settings.cache_ttl_hours) == (1000, 1.5)
    assert settings.quota_max_downloads is None
    assert settings.quota_max_concurrent_downloads == 3


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
        ("[[locations]]\nname = 'cache'\n", "no location may be named 'cache'"),
        ("[[locations]]\nname = 'a'\ncopy_after_days = 1\n", "copy_after_days is for cold"),
        (
            "[[locations]]\nname = 'a'\n[[locations]]\nname = 'b'\nkind = 'cold'\n"
            "drop_after_days = 1\n",
            "drop_after_days is for hot",
        ),
        ("restore_poll_seconds = 0\n", "restore_poll_seconds must be positive"),
        ("quota_max_downloads = -1\n", "quota_max_downloads must not be negative"),
        ('server = "gunicorn"\n', "server must be one of"),
        ("max_concurrent_patches = 0\n", "max_concurrent_patches must be at least 1"),
        (
            "memory_trim_above_bytes = -1\n",
            "memory_trim_above_bytes must not be negative",
        ),
        ("keep_alive_timeout_seconds = 0\n", "keep_alive_timeout_seconds and patch_idle"),
    ],
)
def test_invalid_location_settings_are_refused(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "tusgate.toml"
    config.write_text(toml)
    with pytest.raises(ValueError, match=message):
        load_settings({"TUSGATE_CONFIG": str(config)})


def test_the_slow_client_limits_come_from_the_environment() -> None:
    default = load_settings({})
    assert (default.max_concurrent_patches, default.keep_alive_timeout_seconds) == (64, 75.0)
    chosen = load_settings(
        {"TUSGATE_MAX_CONCURRENT_PATCHES": "none", "TUSGATE_KEEP_ALIVE_TIMEOUT_SECONDS": "5"}
    )
    assert (chosen.max_concurrent_patches, chosen.keep_alive_timeout_seconds) == (None, 5.0)
