"""Started stores for the storage tests: one per backend for the contract suite, and S3 alone.

The S3 store talks to the session's moto server (``s3_bucket`` in tests/conftest.py: a fresh
bucket per test); memory and filesystem stores need nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from app.settings import S3Settings
from app.storage.base import Store
from app.storage.filesystem import FilesystemStore
from app.storage.memory import MemoryStore
from app.storage.s3 import S3Store
from tests.services import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY
from tests.storage import PART

MAX_SIZE = 1024 * 1024 * 1024


@pytest.fixture
def s3_settings(s3_bucket: tuple[str, str]) -> S3Settings:
    endpoint_url, bucket = s3_bucket
    return S3Settings(
        bucket=bucket,
        endpoint_url=endpoint_url,
        region=S3_REGION,
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
        prefix="uploads/",
        part_size=PART,
    )


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@asynccontextmanager
async def started(store: Store) -> AsyncIterator[Store]:
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def s3_store(s3_settings: S3Settings, spool_dir: Path) -> AsyncIterator[S3Store]:
    store = S3Store("s3", s3_settings, spool_dir, MAX_SIZE)
    async with started(store):
        yield store


@pytest.fixture(params=["memory", "filesystem", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, spool_dir: Path
) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore("memory")
    elif request.param == "filesystem":
        backend = FilesystemStore("filesystem", tmp_path / "files")
    else:
        backend = S3Store("s3", request.getfixturevalue("s3_settings"), spool_dir, MAX_SIZE)
    async with started(backend):
        yield backend
