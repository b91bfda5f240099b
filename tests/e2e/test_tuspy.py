"""The official Python tus client against both backend combinations, and under hypercorn, the
ASGI server besides the default."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from tusclient import client as tus

from tests.gateways import StartTarget, Target
from tests.tus.client import my_files, offset

MB = 1000 * 1000


def _client(target: Target, user: str) -> tus.TusClient:
    return tus.TusClient(
        target.files_url, headers={"Authorization": f"Bearer {target.token(user)}"}
    )


def _random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("kind", "server"),
    [("embedded", "uvicorn"), ("services", "uvicorn"), ("embedded", "hypercorn")],
)
def test_thirty_megabytes_in_five_megabyte_chunks_with_checksums(
    start: StartTarget, user: str, http: httpx.Client, tmp_path: Path, kind: str, server: str
) -> None:
    target = start(kind, TUSGATE_SERVER=server)
    path = tmp_path / "thirty.bin"
    expected = _random_file(path, 30 * MB)
    with path.open("rb") as stream:  # tuspy leaves files it opens itself unclosed
        uploader = _client(target, user).uploader(
            file_stream=stream,
            chunk_size=5 * MB,
            metadata={"filename": "thirty.bin"},
            upload_checksum=True,
        )
        uploader.upload()
    [stored] = my_files(http, target, user)
    assert stored["sha256"] == expected
    assert stored["name"] == "thirty.bin"
    assert stored["size"] == 30 * MB


@pytest.mark.parametrize("kind", ["embedded", "services"])
def test_an_interrupted_upload_resumes_where_the_server_says(
    start: StartTarget, user: str, http: httpx.Client, tmp_path: Path, kind: str
) -> None:
    target = start(kind)
    path = tmp_path / "resume.bin"
    expected = _random_file(path, 23 * MB)
    with path.open("rb") as stream:
        first = _client(target, user).uploader(file_stream=stream, chunk_size=5 * MB)
        first.upload(stop_at=12 * MB)
    assert offset(http, target, user, first.url) == 12 * MB
    with path.open("rb") as stream:
        second = _client(target, user).uploader(
            file_stream=stream, chunk_size=5 * MB, url=first.url
        )
        assert second.offset == 12 * MB
        second.upload()
    assert [f["sha256"] for f in my_files(http, target, user)] == [expected]
