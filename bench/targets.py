"""What the benchmark measures, each started as its users would run it and stopped afterwards.

A ``Target`` is a running tus server: its endpoint, its process (for RSS and CPU time), the
headers each client sends, and ``check``, which reads every finished upload back from where the
server stored it and returns one error per upload whose SHA-256 is not the one sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3

from app.auth.local import LocalIssuer
from bench import peers
from bench.load import Fetch, Stats, fetch_all
from tests.services import (
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    Gateway,
    MotoServer,
    free_port,
    log_tail,
    wait_until,
)

FILESYSTEM = "filesystem"
S3 = "s3"
CHECKS_AT_ONCE = 4
READ = 1024 * 1024

Check = Callable[[Stats], Coroutine[Any, Any, list[str]]]


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "null", "tusgate", "tus-node-server", "tuspyserver"
    store: str  # FILESYSTEM or S3 ("" for the null server)
    url: str  # the tus endpoint, ending in /files/
    pid: int
    headers: Callable[[int], dict[str, str]]
    check: Check


def no_headers(_: int) -> dict[str, str]:
    return {}


async def nothing_to_check(_: Stats) -> list[str]:
    return []


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def _process(
    command: list[str], port: int, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[int]:
    """Run ``command`` until the block ends; its pid once ``port`` accepts connections."""
    with tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        try:
            wait_until(
                lambda: process.poll() is None and _listening(port),
                timeout=30,
                what=f"{command[0]} on port {port}\n{log_tail(Path(log.name))}",
            )
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _mismatches(stats: Stats, stored: dict[str, str]) -> list[str]:
    return [
        f"{location}: stored SHA-256 {stored.get(location) or '(nothing)'} != {expected}"
        for location, expected in stats.checksums.items()
        if stored.get(location) != expected
    ]


def files_check(directory: Path) -> Check:
    """Uploads stored as ``directory/<last segment of the upload URL>`` (both peers)."""

    def digest(path: Path) -> str:
        if not path.exists():
            return ""
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()

    async def check(stats: Stats) -> list[str]:
        gate = asyncio.Semaphore(CHECKS_AT_ONCE)

        async def one(location: str) -> tuple[str, str]:
            async with gate:
                path = directory / location.rstrip("/").rsplit("/", 1)[-1]
                return location, await asyncio.to_thread(digest, path)

        found = await asyncio.gather(*(one(location) for location in stats.checksums))
        return _mismatches(stats, dict(found))

    return check


def s3_client(moto: MotoServer) -> Any:
    """An aioboto3 S3 client of the test server (to use with ``async with``)."""
    return aioboto3.Session().client(
        "s3",
        endpoint_url=moto.endpoint_url,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
    )


def s3_check(moto: MotoServer, bucket: str) -> Check:
    """Uploads stored as objects named by the last segment of the upload URL (tus-node S3)."""

    async def check(stats: Stats) -> list[str]:
        gate = asyncio.Semaphore(CHECKS_AT_ONCE)
        async with s3_client(moto) as s3:

            async def one(location: str) -> tuple[str, str]:
                key = location.rstrip("/").rsplit("/", 1)[-1]
                hasher = hashlib.sha256()
                async with gate:
                    try:
                        answer = await s3.get_object(Bucket=bucket, Key=key)
                    except s3.exceptions.NoSuchKey:
                        return location, ""
                    async for piece in answer["Body"].iter_chunks(READ):
                        hasher.update(piece)
                return location, hasher.hexdigest()

            found = await asyncio.gather(*(one(location) for location in stats.checksums))
        return _mismatches(stats, dict(found))

    return check


@contextmanager
def null_server() -> Iterator[Target]:
    port = free_port()
    with _process([sys.executable, "-m", "bench.null_server", str(port)], port) as pid:
        yield Target(
            "null server (ceiling)",
            "null",
            "",
            f"http://127.0.0.1:{port}/files/",
            pid,
            no_headers,
            nothing_to_check,
        )


class Tokens:
    """One local-issuer token per client: each client is a user of its own."""

    def __init__(self, issuer: LocalIssuer) -> None:
        self.issuer = issuer
        self._tokens: dict[int, str] = {}

    def __call__(self, number: int) -> dict[str, str]:
        if number not in self._tokens:
            self._tokens[number] = self.issuer.issue(f"bench-{number}", [], 3600)
        return {"Authorization": f"Bearer {self._tokens[number]}"}


def _gateway_check(url: str, tokens: Tokens) -> Check:
    """Every upload downloaded by its owner from ``/download/{the SHA-256 sent}`` and hashed:
    a file stored with other bytes is not found under that name, or hashes differently."""

    async def check(stats: Stats) -> list[str]:
        fetches = [
            Fetch(
                f"/download/{stats.checksums[location]}", tokens(number), stats.checksums[location]
            )
            for number, location in stats.locations.items()
        ]
        fetched, _ = await fetch_all(url, fetches, concurrency=CHECKS_AT_ONCE, digest=True)
        return fetched.errors

    return check


@contextmanager
def tusgate(name: str, store: str, env: dict[str, str]) -> Iterator[Target]:
    data_dir = Path(env["TUSGATE_DATA_DIR"])
    env = {
        **env,
        "TUSGATE_LOCAL_ISSUER_KEY_FILE": str(data_dir / "local-issuer.jwk"),
        "TUSGATE_LOG_FORMAT": "json",
        "TUSGATE_QUOTA_MAX_UPLOADS": "100000",
        "TUSGATE_QUOTA_MAX_CONCURRENT_DOWNLOADS": "100000",
    }
    server = Gateway(env)
    server.start()
    try:
        tokens = Tokens(LocalIssuer.from_file(data_dir / "local-issuer.jwk"))
        yield Target(
            name,
            "tusgate",
            store,
            f"{server.url}/files/",
            server.pid,
            tokens,
            _gateway_check(server.url, tokens),
        )
    finally:
        server.close()


@contextmanager
def tus_node_file(directory: Path) -> Iterator[Target]:
    port = free_port()
    with _process(peers.tus_node_command(port, "file", str(directory)), port) as pid:
        yield Target(
            "tus-node-server, @tus/file-store",
            "tus-node-server",
            FILESYSTEM,
            f"http://127.0.0.1:{port}/files/",
            pid,
            no_headers,
            files_check(directory),
        )


@contextmanager
def tus_node_s3(moto: MotoServer) -> Iterator[Target]:
    port = free_port()
    bucket = "tus-node"
    moto.create_bucket(bucket)
    env = peers.s3_env(moto.endpoint_url, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY)
    with _process(peers.tus_node_command(port, "s3", bucket), port, env=env) as pid:
        yield Target(
            "tus-node-server, @tus/s3-store",
            "tus-node-server",
            S3,
            f"http://127.0.0.1:{port}/files/",
            pid,
            no_headers,
            s3_check(moto, bucket),
        )


@contextmanager
def tuspyserver(directory: Path) -> Iterator[Target]:
    port = free_port()
    command, cwd = peers.tuspyserver_command(port)
    env = {**os.environ, "BENCH_FILES_DIR": str(directory)}
    with _process(command, port, cwd=cwd, env=env) as pid:
        yield Target(
            "tuspyserver (uvicorn)",
            "tuspyserver",
            FILESYSTEM,
            f"http://127.0.0.1:{port}/files/",
            pid,
            no_headers,
            files_check(directory),
        )
