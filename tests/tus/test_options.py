"""OPTIONS: capability discovery, and CORS preflight (the one request without a token)."""

from __future__ import annotations

import httpx

from tests.gateways import TUS, Target


def test_discovery_lists_version_extensions_and_limits(
    target: Target, user: str, http: httpx.Client
) -> None:
    response = http.options(target.files_url, headers=target.headers(user))
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-resumable"] == "1.0.0"
    extensions = set(response.headers["tus-extension"].split(","))
    assert extensions == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "termination",
        "checksum",
        "concatenation",
        "concatenation-unfinished",
    }
    assert int(response.headers["tus-max-size"]) == 1024**3
    assert {"sha1", "md5", "sha256"} <= set(response.headers["tus-checksum-algorithm"].split(","))


def test_discovery_needs_a_token(target: Target, http: httpx.Client) -> None:
    response = http.options(target.files_url, headers=TUS)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_cors_preflight_needs_no_token_and_allows_tus_headers(
    target: Target, http: httpx.Client
) -> None:
    response = http.options(
        target.files_url,
        headers={
            "Origin": "https://uploads.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, upload-offset, tus-resumable",
        },
    )
    assert response.status_code == 200
    assert "PATCH" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "upload-offset" in allowed
    assert "authorization" in allowed


def test_cross_origin_responses_expose_tus_headers(
    target: Target, user: str, http: httpx.Client
) -> None:
    headers = target.headers(user, Upload_Length="10", Origin="https://uploads.example")
    response = http.post(target.files_url, headers=headers)
    assert response.status_code == 201
    exposed = response.headers["access-control-expose-headers"].lower()
    for name in ("location", "upload-offset", "upload-expires", "tus-resumable"):
        assert name in exposed
