"""The page in OIDC mode: keycloak-js signs in with the authorization code flow and PKCE
(against the stand-in provider), and refreshes the token while a long upload runs."""

from __future__ import annotations

import os
from pathlib import Path

from tests.gateways import StartTarget
from tests.oidc_provider import OIDCProvider
from tests.web.conftest import WatchedPage
from tests.web.page import pick, row, sha256sum, throttle

MiB = 1024 * 1024
ACCESS_TTL = 3  # seconds: far shorter than the upload below


def test_a_token_that_expires_during_an_upload_is_refreshed(
    start: StartTarget, provider: OIDCProvider, watched: WatchedPage, tmp_path: Path
) -> None:
    realm = provider.new_realm(browser_user="carol", access_ttl=ACCESS_TTL)
    # No leeway: a token is refused the second it expires.
    target = start("embedded", TUSGATE_OIDC_ISSUER=realm.issuer, TUSGATE_TOKEN_LEEWAY_SECONDS="0")
    watched.page.goto(f"{target.url}/")
    watched.page.wait_for_selector("#app:not([hidden])")
    assert watched.page.locator("#who").inner_text() == "Signed in as carol"
    assert "#" not in watched.page.url  # the code left the address bar
    assert realm.logins()["login"] == 1

    path = tmp_path / "long.bin"
    path.write_bytes(os.urandom(24 * MiB))
    throttle(watched, 3 * MiB)  # about eight seconds: several token lifetimes
    pick(watched, path)
    row(watched, sha256sum(path))
    assert realm.logins()["refresh"] >= 2
