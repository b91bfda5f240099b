"""The newcomer's path: run ``serve`` in a terminal, open the address it prints, upload, see
and download — and the same address is never written where logs go."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from tests.services import REPO_ROOT, free_port, http_status, wait_until
from tests.web.conftest import WatchedPage
from tests.web.page import pick, row

URL = re.compile(rb"http://127\.0\.0\.1:\d+/#token=[A-Za-z0-9_.-]+")


def _serve(data_dir: Path, port: int, stdout: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env={**os.environ, "TUSGATE_DATA_DIR": str(data_dir)},
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
    )


def test_the_printed_address_signs_a_newcomer_in(watched: WatchedPage, tmp_path: Path) -> None:
    port = free_port()
    terminal, screen = pty.openpty()
    server = _serve(tmp_path / "data", port, screen)
    os.close(screen)
    try:
        address = _printed_address(terminal)
        wait_until(
            lambda: http_status("GET", f"http://127.0.0.1:{port}/healthz") == 200,
            timeout=30,
            what="the gateway",
        )
        watched.page.goto(address)
        watched.page.wait_for_selector("#app:not([hidden])")
        assert watched.page.locator("#who").inner_text() == "Signed in as admin"
        assert "#token" not in watched.page.url
        path = tmp_path / "first.bin"
        path.write_bytes(os.urandom(3 * 1024 * 1024))
        pick(watched, path)
        row(watched, hashlib.sha256(path.read_bytes()).hexdigest())
    finally:
        server.terminate()
        server.wait(30)
        os.close(terminal)


def _printed_address(terminal: int) -> str:
    """The sign-in address as the terminal shows it."""
    shown = bytearray()

    def printed() -> bool:
        if select.select([terminal], [], [], 0.1)[0]:
            shown.extend(os.read(terminal, 4096))
        return URL.search(shown) is not None

    wait_until(printed, timeout=30, what="the sign-in address")
    match = URL.search(shown)
    assert match is not None
    return match.group().decode()


def test_without_a_terminal_the_address_goes_to_a_file_not_the_log(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "log"
    with log.open("wb") as output:
        server = _serve(tmp_path / "data", port, output.fileno())
        try:
            wait_until(
                lambda: http_status("GET", f"http://127.0.0.1:{port}/healthz") == 200,
                timeout=30,
                what="the gateway",
            )
        finally:
            server.terminate()
            server.wait(30)
    address = (tmp_path / "data" / "sign-in-url").read_text()
    assert URL.fullmatch(address.strip().encode())
    assert (tmp_path / "data" / "sign-in-url").stat().st_mode & 0o077 == 0
    assert b"#token=" not in log.read_bytes()
