"""tus-js-client (from npm, run by Node) with parallelUploads: partial uploads joined at the end."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.download.client import fetch
from tests.gateways import Target
from tests.tus.client import head, my_files

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
MB = 1000 * 1000


def _node_upload(target: Target, user: str, path: Path, parallel: int, chunk: int) -> str:
    """Run tus-js-client as a Node program; the final upload's URL."""
    command = ["node", "tus-upload.mjs", target.files_url, target.token(user), str(path)]
    done = subprocess.run(
        [*command, str(parallel), str(chunk)],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_parallel_uploads_of_a_hundred_megabytes(
    target: Target, user: str, http: httpx.Client, tmp_path: Path
) -> None:
    data = os.urandom(100 * MB)
    path = tmp_path / "parallel.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    url = _node_upload(target, user, path, parallel=4, chunk=8 * MB)
    concat = head(http, target, user, url).headers["upload-concat"]
    assert concat.startswith("final;")
    assert len(concat.split()) == 4  # "final;<url>" and three more partial URLs
    [stored] = my_files(http, target, user)
    assert stored["sha256"] == expected
    assert stored["name"] == "parallel.bin"
    downloaded = fetch(http, target, user, expected)
    assert downloaded.status_code == 200
    assert hashlib.sha256(downloaded.content).hexdigest() == expected
