"""The page in a real browser: Uppy uploads over tus, "My files" lists, downloads and deletes,
uploads survive a network cut and a reload, limits show the gateway's reasons."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from tests.download.client import ADMIN, store
from tests.download.cold import cold_gateway, tier
from tests.gateways import StartTarget, Target
from tests.tus.client import my_files
from tests.web.conftest import WatchedPage
from tests.web.page import (
    UPLOAD_TIMEOUT_MS,
    pattern_sha256,
    pick,
    row,
    sha256sum,
    sign_in,
    throttle,
    wait_until,
    watch_tus,
)

MiB = 1024 * 1024


@pytest.fixture
def page_gateway(start: StartTarget) -> Target:
    return start("embedded")


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _download(watched: WatchedPage, sha256: str) -> str:
    """Click Download in the file's row; the SHA-256 of what the browser saved."""
    with watched.page.expect_download() as download:
        row(watched, sha256).get_by_role("button", name="Download").click()
    saved = download.value.path()
    return hashlib.sha256(Path(saved).read_bytes()).hexdigest()


def test_a_file_picked_in_the_dashboard_is_uploaded_listed_and_downloaded(
    watched: WatchedPage, page_gateway: Target, user: str, tmp_path: Path
) -> None:
    sign_in(watched, page_gateway, user)
    watched.page.get_by_text("No files yet").wait_for()
    watched.screenshot("empty")
    path = _file(tmp_path, "report 2026 — été.bin", 30 * MiB)
    expected = sha256sum(path)
    traffic = watch_tus(watched)
    throttle(watched, 10 * MiB)  # slow enough to be seen uploading
    pick(watched, path)
    wait_until(watched, lambda: len(traffic.patches) >= 2, "some progress")
    watched.screenshot("uploading")
    listed = row(watched, expected)
    assert listed.locator(".name").inner_text() == path.name
    assert listed.locator(".checksum").inner_text() == expected
    assert listed.locator(".availability").inner_text() == "Online"
    assert "30.0 MiB of 50.0 GiB used" in watched.page.locator("#quota-text").inner_text()
    watched.screenshot("files")
    assert _download(watched, expected) == expected


def test_a_file_dropped_on_the_dashboard_is_uploaded(
    watched: WatchedPage, page_gateway: Target, user: str
) -> None:
    sign_in(watched, page_gateway, user)
    size = 30 * MiB
    dropped = watched.page.evaluate_handle(
        """size => {
            const bytes = new Uint8Array(size)
            for (let i = 0; i < size; i++) bytes[i] = i % 251
            const transfer = new DataTransfer()
            const type = 'application/octet-stream'
            transfer.items.add(new File([bytes], 'dropped.bin', { type }))
            return transfer
        }""",
        size,
    )
    target = watched.page.locator(".uppy-Dashboard-inner")
    target.dispatch_event("dragenter", {"dataTransfer": dropped})
    target.dispatch_event("dragover", {"dataTransfer": dropped})
    target.dispatch_event("drop", {"dataTransfer": dropped})
    expected = pattern_sha256(size)
    assert row(watched, expected).locator(".name").inner_text() == "dropped.bin"


def test_an_upload_cut_off_by_the_network_resumes_where_it_stopped(
    watched: WatchedPage, page_gateway: Target, user: str, tmp_path: Path, http: httpx.Client
) -> None:
    watched.allow("ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED|Failed to fetch")
    sign_in(watched, page_gateway, user)
    traffic = watch_tus(watched)
    path = _file(tmp_path, "cut.bin", 30 * MiB)
    throttle(watched, 8 * MiB)
    pick(watched, path)
    wait_until(watched, lambda: len(traffic.patches) >= 2, "a second PATCH")
    upload_url = traffic.patches[0][0]
    watched.context.set_offline(True)
    watched.page.get_by_text("No Internet connection").first.wait_for()
    saw = _server_offset(http, page_gateway, user, upload_url)
    assert saw > 0
    watched.context.set_offline(False)
    expected = sha256sum(path)
    row(watched, expected)
    assert len(traffic.creations) == 1  # the same upload throughout
    resumed = [offset for url, offset in traffic.patches if url == upload_url]
    assert 0 < saw <= max(resumed)  # a PATCH after the cut started past 0, from the server's offset
    assert saw in resumed


def test_a_page_reloaded_mid_upload_resumes_the_upload(
    start: StartTarget, watched: WatchedPage, user: str, tmp_path: Path
) -> None:
    # Small chunks and a file Golden Retriever keeps in IndexedDB (at most 10 MiB there), so
    # the reloaded page has the bytes and carries on by itself.
    target = start("embedded", TUSGATE_WEB_CHUNK_SIZE=str(MiB))
    sign_in(watched, target, user)
    traffic = watch_tus(watched)
    path = _file(tmp_path, "reloaded.bin", 9 * MiB)
    throttle(watched, 2 * MiB)
    pick(watched, path)
    wait_until(watched, lambda: len(traffic.patches) >= 3, "a few PATCHes")
    sent = len(traffic.patches)
    before = max(offset for _, offset in traffic.patches)
    watched.page.reload()
    throttle(watched, 2 * MiB)
    row(watched, sha256sum(path))
    assert len(traffic.creations) == 1  # no new upload: the old one went on
    after = [offset for _, offset in traffic.patches[sent:]]
    assert after
    assert min(after) >= before > 0  # from where it was, not from the start


def test_a_quota_refusal_shows_the_gateways_reason_and_stores_nothing(
    watched: WatchedPage, page_gateway: Target, user: str, tmp_path: Path, http: httpx.Client
) -> None:
    # The refused creation, as the browser and Uppy's logger report it.
    watched.allow("status of 403|tus: unexpected response while creating upload")
    _set_quota(http, page_gateway, user, max_bytes=MiB)
    sign_in(watched, page_gateway, user)
    pick(watched, _file(tmp_path, "over-quota.bin", 2 * MiB))
    reason = f"storage quota: 0 bytes used + {2 * MiB} > max_bytes {MiB}"
    watched.page.get_by_text(reason).first.wait_for(timeout=UPLOAD_TIMEOUT_MS)
    assert my_files(http, page_gateway, user) == []


def test_a_file_over_the_size_limit_is_refused_before_upload(
    watched: WatchedPage, page_gateway: Target, user: str, tmp_path: Path, http: httpx.Client
) -> None:
    _set_quota(http, page_gateway, user, max_file_size=MiB)
    sign_in(watched, page_gateway, user)
    traffic = watch_tus(watched)
    pick(watched, _file(tmp_path, "too-big.bin", 2 * MiB))
    watched.page.get_by_text("exceeds maximum allowed size").first.wait_for()
    assert traffic.creations == []
    assert my_files(http, page_gateway, user) == []


def _set_quota(http: httpx.Client, target: Target, user: str, **limits: int) -> None:
    response = http.put(
        f"{target.url}/api/quotas/{user}",
        headers=target.headers("root", roles=ADMIN),
        json=limits,
    )
    assert response.status_code == 200, response.text


def _server_offset(http: httpx.Client, target: Target, user: str, upload_url: str) -> int:
    upload_id = upload_url.rstrip("/").rsplit("/", 1)[1]
    response = http.get(f"{target.url}/api/uploads/{upload_id}", headers=target.headers(user))
    assert response.status_code == 200, response.text
    offset: int = response.json()["offset"]
    return offset


def test_a_cold_file_is_restored_from_the_page_then_downloaded_and_deleted(
    start: StartTarget,
    request: pytest.FixtureRequest,
    watched: WatchedPage,
    user: str,
    tmp_path: Path,
    http: httpx.Client,
) -> None:
    target = cold_gateway(start, request, "embedded").target
    path = _file(tmp_path, "archived.bin", 3 * MiB)
    checksum = store(http, target, user, path.read_bytes(), name=path.name)
    tier(target)
    sign_in(watched, target, user)
    listed = row(watched, checksum)
    assert listed.locator(".availability").inner_text() == "Cold: restore first"
    assert listed.get_by_role("button", name="Download").is_disabled()
    listed.get_by_role("button", name="Restore").click()
    listed.get_by_text("Online (restored) until").wait_for(timeout=UPLOAD_TIMEOUT_MS)
    assert _download(watched, checksum) == checksum

    watched.page.once("dialog", lambda dialog: dialog.accept())
    row(watched, checksum).get_by_role("button", name="Delete").click()
    watched.page.get_by_text("No files yet").wait_for()
    assert my_files(http, target, user) == []


def test_the_page_fits_a_phone_labels_its_controls_and_works_from_the_keyboard(
    watched: WatchedPage, page_gateway: Target, user: str, tmp_path: Path, http: httpx.Client
) -> None:
    watched.page.set_viewport_size({"width": 375, "height": 800})
    response = watched.page.goto(f"{page_gateway.url}/#token={page_gateway.token(user)}")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    watched.page.wait_for_selector("#app:not([hidden])")
    path = _file(tmp_path, "phone.bin", MiB)
    checksum = store(http, page_gateway, user, path.read_bytes(), name=path.name)
    watched.page.get_by_role("button", name="Refresh").click()
    row(watched, checksum)
    watched.screenshot("phone")
    assert watched.page.evaluate("document.documentElement.scrollWidth") <= 375
    unnamed = watched.page.evaluate(
        """() => [...document.querySelectorAll('main button, header button')]
              .filter(b => !(b.getAttribute('aria-label') || b.textContent).trim()).length"""
    )
    assert unnamed == 0
    unlabelled = watched.page.evaluate(
        """() => [...document.querySelectorAll('#sign-in textarea, #quota-meter')]
              .filter(e => e.labels.length === 0).length"""
    )
    assert unlabelled == 0
    download = row(watched, checksum).get_by_role("button", name="Download")
    download.focus()
    with watched.page.expect_download() as saved:
        watched.page.keyboard.press("Enter")
    assert hashlib.sha256(Path(saved.value.path()).read_bytes()).hexdigest() == checksum


def test_a_pasted_token_signs_in_and_signing_out_forgets_it(
    watched: WatchedPage, page_gateway: Target, user: str
) -> None:
    watched.allow("status of 401")  # the refused token, as the browser logs it
    watched.page.goto(f"{page_gateway.url}/")
    watched.page.get_by_label("Bearer token").fill("not-a-token")
    watched.page.get_by_role("button", name="Sign in").click()
    watched.page.get_by_text("That token was refused").wait_for()
    watched.page.get_by_label("Bearer token").fill(page_gateway.token(user))
    watched.page.get_by_role("button", name="Sign in").click()
    watched.page.wait_for_selector("#app:not([hidden])")
    assert watched.page.locator("#who").inner_text() == f"Signed in as {user}"
    watched.page.get_by_role("button", name="Sign out").click()
    watched.page.get_by_label("Bearer token").wait_for()
    assert watched.page.evaluate("sessionStorage.length") == 0
    watched.page.reload()
    watched.page.get_by_label("Bearer token").wait_for()
