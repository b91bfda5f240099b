"""Disk full where the gateway writes upload bytes: a clear 507, and nothing lost or damaged.

The filesystem store writes into its directory; the S3 store spools every part to a local
directory before sending it (``spool_dir``) and loads an upload's tail there to resume it.
Each test puts one of them on a small tmpfs of its own, fills it with an upload, checks the
answer and the committed offset, makes room (the tmpfs grows, as when an operator frees space)
and resumes the upload to the end, then checks the SHA-256 of what is stored.

Mounting needs root, as CI has; elsewhere these tests fail, loudly, rather than skip.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.download.client import fetch
from tests.gateways import StartTarget, Target
from tests.tus.client import create, head, offset, patch

MiB = 1024 * 1024
Mount = Callable[[str, str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """``tmpfs(name, size)``: a new tmpfs of ``size`` (e.g. "3m") under the test's directory,
    unmounted after the test (this fixture comes before ``start``: the gateways stop first)."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (CI runs as root): run these tests as root")
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "--lazy", path], check=True)


def _grow(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", path], check=True)


def _assert_full(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert response.text.startswith("storage full"), response.text
    assert response.text.count("\n") == 1  # one line


def _finish_and_verify(
    http: httpx.Client, target: Target, user: str, url: str, body: bytes
) -> None:
    """Resume from the offset the gateway reports, to the end; the file must be ``body``."""
    at = offset(http, target, user, url)
    response = patch(http, target, user, url, at, body[at:])
    assert response.status_code == 204, response.text
    assert response.headers["upload-offset"] == str(len(body))
    stored = fetch(http, target, user, hashlib.sha256(body).hexdigest())
    assert stored.status_code == 200
    assert hashlib.sha256(stored.content).hexdigest() == hashlib.sha256(body).hexdigest()


def test_a_full_store_directory_answers_507_and_the_upload_resumes(
    tmpfs: Mount, start: StartTarget, tmp_path: Path, http: httpx.Client, user: str
) -> None:
    store = tmpfs("store", "4m")
    config = tmp_path / "tusgate.toml"
    config.write_text(f'[[locations]]\nname = "local"\npath = "{store}"\n')
    target = start("embedded", TUSGATE_CONFIG=str(config))
    body = os.urandom(8 * MiB + 123)
    url = create(http, target, user, len(body))

    first = patch(http, target, user, url, 0, body[: 2 * MiB])
    assert first.status_code == 204, first.text
    _assert_full(patch(http, target, user, url, 2 * MiB, body[2 * MiB :]))
    # Nothing of the refused request counts; what was committed before stays.
    assert offset(http, target, user, url) == 2 * MiB
    _assert_full(patch(http, target, user, url, 2 * MiB, body[2 * MiB :]))
    assert offset(http, target, user, url) == 2 * MiB

    _grow(store, "64m")
    _finish_and_verify(http, target, user, url, body)


def test_a_full_spool_answers_507_and_the_s3_upload_resumes(
    tmpfs: Mount, start: StartTarget, http: httpx.Client, user: str
) -> None:
    spool = tmpfs("spool", "3m")  # less than one 5 MiB part
    target = start("services", TUSGATE_SPOOL_DIR=str(spool))
    body = os.urandom(12 * MiB + 321)
    url = create(http, target, user, len(body))

    # 1 MiB committed as the upload's tail; resuming loads it into the spool, and the next
    # 3 MiB do not fit beside it.
    first = patch(http, target, user, url, 0, body[:MiB])
    assert first.status_code == 204, first.text
    _assert_full(patch(http, target, user, url, MiB, body[MiB : 4 * MiB]))
    assert offset(http, target, user, url) == MiB
    assert list(spool.iterdir()) == []  # the failed writer's spool files are gone

    _grow(spool, "32m")
    _finish_and_verify(http, target, user, url, body)
    assert list(spool.iterdir()) == []


def test_creation_with_upload_on_a_full_disk_still_creates_the_upload(
    tmpfs: Mount, start: StartTarget, tmp_path: Path, http: httpx.Client, user: str
) -> None:
    """The upload exists whatever happens to its first bytes: the client gets its URL and the
    offset reached, and resumes from there."""
    store = tmpfs("store", "1m")
    config = tmp_path / "tusgate.toml"
    config.write_text(f'[[locations]]\nname = "local"\npath = "{store}"\n')
    target = start("embedded", TUSGATE_CONFIG=str(config))
    body = os.urandom(3 * MiB)
    headers = target.headers(
        user, Upload_Length=str(len(body)), Content_Type="application/offset+octet-stream"
    )
    created = http.post(target.files_url, headers=headers, content=body)
    assert created.status_code == 201, created.text
    assert created.headers["upload-offset"] == "0"
    url = created.headers["location"]
    assert offset(http, target, user, url) == 0

    _grow(store, "64m")
    _finish_and_verify(http, target, user, url, body)


def test_concatenation_on_a_full_disk_leaves_a_final_upload_to_finish(
    tmpfs: Mount, start: StartTarget, tmp_path: Path, http: httpx.Client, user: str
) -> None:
    """Joining partial uploads writes the whole file again: on a full disk the final upload is
    created all the same, and a HEAD assembles it once there is room."""
    store = tmpfs("store", "5m")
    config = tmp_path / "tusgate.toml"
    config.write_text(f'[[locations]]\nname = "local"\npath = "{store}"\n')
    target = start("embedded", TUSGATE_CONFIG=str(config))
    pieces = [os.urandom(2 * MiB), os.urandom(2 * MiB)]
    urls = []
    for piece in pieces:
        url = create(http, target, user, len(piece), Upload_Concat="partial")
        assert patch(http, target, user, url, 0, piece).status_code == 204
        urls.append(url)
    headers = target.headers(user, Upload_Concat="final;" + " ".join(urls))
    final = http.post(target.files_url, headers=headers)
    assert final.status_code == 201, final.text
    full = head(http, target, user, final.headers["location"])
    assert full.status_code == 507
    assert "upload-offset" not in full.headers
    # The half-made copy is gone: the partials alone take the room.
    assert shutil.disk_usage(store).used < 4 * MiB + 64 * 1024

    _grow(store, "64m")
    assembled = head(http, target, user, final.headers["location"])
    assert assembled.status_code == 200
    assert assembled.headers["upload-offset"] == str(4 * MiB)
    stored = fetch(http, target, user, hashlib.sha256(b"".join(pieces)).hexdigest())
    assert stored.status_code == 200
    assert stored.content == b"".join(pieces)


def test_a_full_database_disk_answers_507_and_creation_works_again_after(
    tmpfs: Mount, start: StartTarget, http: httpx.Client, user: str
) -> None:
    """SQLite's "database or disk is full" is the disk's state, not a bug: 507, never 500
    (found by the benchmark, whose scratch disk filled up under 1,000 clients)."""
    disk = tmpfs("database", "2m")
    target = start("embedded", TUSGATE_DATABASE_URL=f"sqlite+aiosqlite:///{disk}/tusgate.db")
    create(http, target, user, MiB)  # the schema is in place
    with (disk / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(os.urandom(64 * 1024))
                filler.flush()
        except OSError:
            pass  # the disk is full
    metadata = "filename " + base64.b64encode(os.urandom(3000)).decode()
    answers = [
        http.post(
            target.files_url,
            headers=target.headers(user, Upload_Length=str(MiB), Upload_Metadata=metadata),
        )
        for _ in range(40)
    ]
    statuses = {answer.status_code for answer in answers}
    assert statuses <= {201, 507}, [answer.text for answer in answers]
    refused = next(answer for answer in answers if answer.status_code == 507)
    assert refused.text == "database full: this request was not recorded; retry later\n"

    (disk / "filler").unlink()
    create(http, target, user, MiB)
