"""The load generator: N tus clients over raw HTTP/1.1 on asyncio streams.

An httpx-based client capped at ~195 MiB/s on this machine even against a server that stores
nothing; this one hands each body to the socket as memoryviews of one shared buffer, so the
client is not what is measured. Every client uploads a file of its own: the shared body
followed by a 16-byte suffix naming the client, whose SHA-256 costs one ``hash.copy()`` of the
body's precomputed state — so the server's checksum of every upload can be verified cheaply.

Measured per run: bytes and uploads per second, PATCH latencies, HEAD latencies under the load
(a separate task asks HEAD of running uploads), and errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SUFFIX = 16
CRLF = b"\r\n"


@dataclass
class Stats:
    bytes: int = 0
    uploads: int = 0
    errors: list[str] = field(default_factory=list)
    patch_latencies: list[float] = field(default_factory=list)
    head_latencies: list[float] = field(default_factory=list)
    locations: dict[int, str] = field(default_factory=dict)  # client → upload URL
    checksums: dict[str, str] = field(default_factory=dict)  # upload URL → expected SHA-256


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Connection:
    """One keep-alive HTTP/1.1 connection; requests go one after the other."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: list[memoryview] | None = None
    ) -> tuple[int, dict[str, str]]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        length = sum(len(part) for part in body or [])
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {length}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        for part in body or []:
            self.writer.write(part)
            await self.writer.drain()
        await self.writer.drain()
        return await self._response()

    async def _response(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (CRLF, b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return int(status_line.split()[1]), headers

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass(frozen=True)
class Load:
    url: str  # the tus endpoint, e.g. http://127.0.0.1:8080/files/
    clients: int
    size: int
    chunk: int
    headers: Callable[[int], dict[str, str]]  # per client: Authorization and the like


async def run(load: Load) -> tuple[Stats, float]:
    """Upload ``clients`` files at once; the statistics and the wall time."""
    parts = urlsplit(load.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = memoryview(os.urandom(load.size - SUFFIX))
    prefix = hashlib.sha256(body)
    stats = Stats()
    running = asyncio.Event()

    async def client(number: int) -> None:
        suffix = number.to_bytes(SUFFIX, "big")
        expected = prefix.copy()
        expected.update(suffix)
        connection = Connection(host, port)
        headers = {"Tus-Resumable": "1.0.0", **load.headers(number)}
        try:
            status, answer = await connection.request(
                "POST", parts.path, {**headers, "Upload-Length": str(load.size)}
            )
            if status != 201:
                raise RuntimeError(f"POST answered {status}")
            location = urlsplit(answer["location"]).path
            stats.locations[number] = location
            stats.checksums[location] = expected.hexdigest()
            running.set()
            offset = 0
            whole = [body, memoryview(suffix)]
            while offset < load.size:
                end = min(offset + load.chunk, load.size)
                chunk = _slice(whole, offset, end)
                started = time.perf_counter()
                status, answer = await connection.request(
                    "PATCH",
                    location,
                    {
                        **headers,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                    chunk,
                )
                stats.patch_latencies.append(time.perf_counter() - started)
                if status != 204:
                    raise RuntimeError(f"PATCH answered {status}")
                stats.bytes += end - offset
                offset = int(answer["upload-offset"])
            stats.uploads += 1
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            stats.errors.append(f"client {number}: {exc!r}")
        finally:
            await connection.close()

    async def heads(done: asyncio.Event) -> None:
        await running.wait()
        connection = Connection(host, port)
        rng = random.Random(0)
        try:
            while not done.is_set():
                location = stats.locations[rng.choice(list(stats.locations))]
                started = time.perf_counter()
                headers = {"Tus-Resumable": "1.0.0", **load.headers(0)}
                status, _ = await connection.request("HEAD", location, headers)
                if status == 200:
                    stats.head_latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)
        finally:
            await connection.close()

    done = asyncio.Event()
    started = time.perf_counter()
    watcher = asyncio.create_task(heads(done))
    await asyncio.gather(*(client(number) for number in range(load.clients)))
    wall = time.perf_counter() - started
    done.set()
    await watcher
    return stats, wall


def _slice(whole: list[memoryview], start: int, end: int) -> list[memoryview]:
    """Bytes ``[start, end)`` of the concatenation of ``whole``, without copying."""
    out: list[memoryview] = []
    position = 0
    for part in whole:
        part_end = position + len(part)
        if part_end > start and position < end:
            out.append(part[max(0, start - position) : min(len(part), end - position)])
        position = part_end
    return out


def summary(stats: Stats, wall: float) -> dict[str, float]:
    mib = 1024 * 1024
    return {
        "MiB/s": stats.bytes / mib / wall,
        "uploads/s": stats.uploads / wall,
        "PATCH p50 ms": percentile(stats.patch_latencies, 0.5) * 1000,
        "PATCH p95 ms": percentile(stats.patch_latencies, 0.95) * 1000,
        "PATCH p99 ms": percentile(stats.patch_latencies, 0.99) * 1000,
        "HEAD p99 ms": percentile(stats.head_latencies, 0.99) * 1000,
        "HEAD median ms": statistics.median(stats.head_latencies) * 1000
        if stats.head_latencies
        else float("nan"),
        "errors": float(len(stats.errors)),
    }
