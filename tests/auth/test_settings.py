"""The identity settings: read from the environment, defaulted, validated once."""

from __future__ import annotations

import pytest

from app.settings import load_settings

ISSUER = "https://keycloak.example/realms/tusgate"


def test_defaults_are_local_mode_with_no_role_required() -> None:
    settings = load_settings({})
    assert settings.oidc_issuer == ""
    assert settings.oidc_audience == "tusgate"
    assert settings.effective_oidc_client_id == "tusgate"
    assert settings.token_leeway_seconds == 30
    assert settings.jwks_min_refresh_seconds == 30.0
    assert settings.user_role == ""
    assert settings.admin_role == "admin"


def test_environment_sets_every_identity_setting() -> None:
    settings = load_settings(
        {
            "TUSGATE_OIDC_ISSUER": ISSUER,
            "TUSGATE_OIDC_AUDIENCE": "uploads",
            "TUSGATE_OIDC_CLIENT_ID": "uploads-api",
            "TUSGATE_TOKEN_LEEWAY_SECONDS": "5",
            "TUSGATE_JWKS_MIN_REFRESH_SECONDS": "120",
            "TUSGATE_USER_ROLE": "user",
            "TUSGATE_ADMIN_ROLE": "boss",
        }
    )
    assert settings.oidc_issuer == ISSUER
    assert settings.oidc_audience == "uploads"
    assert settings.effective_oidc_client_id == "uploads-api"
    assert settings.token_leeway_seconds == 5
    assert settings.jwks_min_refresh_seconds == 120.0
    assert settings.user_role == "user"
    assert settings.admin_role == "boss"


def test_client_id_defaults_to_the_audience() -> None:
    settings = load_settings({"TUSGATE_OIDC_ISSUER": ISSUER, "TUSGATE_OIDC_AUDIENCE": "uploads"})
    assert settings.effective_oidc_client_id == "uploads"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TUSGATE_OIDC_ISSUER": "keycloak/realms/tusgate"}, "oidc_issuer must be an http"),
        ({"TUSGATE_OIDC_ISSUER": ISSUER, "TUSGATE_OIDC_AUDIENCE": ""}, "oidc_audience"),
        ({"TUSGATE_TOKEN_LEEWAY_SECONDS": "-1"}, "token_leeway_seconds"),
        ({"TUSGATE_JWKS_MIN_REFRESH_SECONDS": "-0.5"}, "jwks_min_refresh_seconds"),
        ({"TUSGATE_TOKEN_LEEWAY_SECONDS": "soon"}, "token_leeway_seconds"),
    ],
)
def test_invalid_identity_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(env)
