"""SIGKILL in the middle of an upload: nothing acknowledged is lost, the client resumes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from tusclient import client as tus

from tests.gateways import StartTarget
from tests.tus.client import my_files, offset, open_patch, wait_for, writing

MB = 1000 * 1000


@pytest.mark.parametrize("kind", ["services", "embedded"])
def test_sigkill_mid_patch_then_resume(
    start: StartTarget, user: str, http: httpx.Client, tmp_path: Path, kind: str
) -> None:
    target = start(kind)
    data = os.urandom(30 * MB)
    path = tmp_path / "crash.bin"
    path.write_bytes(data)
    headers = {"Authorization": f"Bearer {target.token(user)}"}
    with path.open("rb") as stream:  # tuspy leaves files it opens itself unclosed
        uploader = tus.TusClient(target.files_url, headers=headers).uploader(
            file_stream=stream, chunk_size=5 * MB
        )
        uploader.upload(stop_at=10 * MB)
    acknowledged = offset(http, target, user, uploader.url)
    assert acknowledged == 10 * MB

    # A PATCH announcing 8 MB sends 6 MB (more than a 5 MiB part), then the server dies.
    sock = open_patch(target, user, uploader.url, acknowledged, 8 * MB, data[10 * MB : 16 * MB])
    wait_for(lambda: writing(http, target, user, uploader.url), "the PATCH to be under way")
    target.gateway.kill()
    sock.close()
    target.gateway.start()

    resumed_at = offset(http, target, user, uploader.url)
    assert resumed_at >= acknowledged
    with path.open("rb") as stream:
        resumed = tus.TusClient(target.files_url, headers=headers).uploader(
            file_stream=stream, chunk_size=5 * MB, url=uploader.url
        )
        assert resumed.offset == resumed_at
        resumed.upload()
    [stored] = my_files(http, target, user)
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
