"""What the page's tests do with it: sign in, pick or drop files, watch the tus requests, and
read the page back."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Locator, Request

from tests.gateways import Target
from tests.web.conftest import WatchedPage

UPLOAD_TIMEOUT_MS = 120_000
TUS_PATH = "/files/"


def sign_in(watched: WatchedPage, target: Target, user: str, path: str = "/") -> None:
    """Open the page the way ``python -m app serve`` tells a user to: the token in the fragment."""
    watched.page.goto(f"{target.url}{path}#token={target.token(user)}")
    watched.page.wait_for_selector("#app:not([hidden])")


def pick(watched: WatchedPage, *paths: Path) -> None:
    """Choose files with the Dashboard's file input (what "browse files" opens)."""
    watched.page.locator("#dashboard input[type=file]").first.set_input_files(
        [str(path) for path in paths]
    )


def row(watched: WatchedPage, sha256: str) -> Locator:
    """The file's row in "My files", once it is there."""
    locator = watched.page.locator(f'tr[data-sha256="{sha256}"]')
    locator.wait_for(timeout=UPLOAD_TIMEOUT_MS)
    return locator


def sha256sum(path: Path) -> str:
    """The checksum as the ``sha256sum`` command gives it."""
    output = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return output.stdout.split()[0]


def pattern(size: int) -> bytes:
    """Bytes the page can make itself (byte i is i % 251), for files dropped from script."""
    return bytes(i % 251 for i in range(251)) * (size // 251) + bytes(range(size % 251))


def pattern_sha256(size: int) -> str:
    return hashlib.sha256(pattern(size)).hexdigest()


def throttle(watched: WatchedPage, upload_bytes_per_second: int) -> None:
    """Slow the page's uploads down (Chromium's network emulation), so that a test can act
    while one is in progress."""
    session = watched.context.new_cdp_session(watched.page)
    session.send("Network.enable")
    session.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": upload_bytes_per_second,
        },
    )


@dataclass
class TusTraffic:
    """The tus requests the page sent: creations, and the offset of each PATCH."""

    creations: list[str] = field(default_factory=list)
    patches: list[tuple[str, int]] = field(default_factory=list)  # (upload URL, offset)

    def record(self, request: Request) -> None:
        if not urlsplit(request.url).path.startswith(TUS_PATH):
            return
        if request.method == "POST":
            self.creations.append(request.url)
        elif request.method == "PATCH":
            self.patches.append((request.url, int(request.headers["upload-offset"])))


def watch_tus(watched: WatchedPage) -> TusTraffic:
    traffic = TusTraffic()
    watched.page.on("request", traffic.record)
    return traffic


def wait_until(watched: WatchedPage, condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` while the browser's events keep flowing (Playwright delivers them only
    while the test is inside one of its calls: ``time.sleep`` would stop them)."""
    deadline = time.monotonic() + UPLOAD_TIMEOUT_MS / 1000
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        watched.page.wait_for_timeout(50)
