"""The load generator: N tus clients over raw HTTP/1.1 on asyncio streams.

An httpx-based client capped at ~195 MiB/s on this machine even against a server that stores
nothing; this one hands each body to the socket as memoryviews of one shared buffer, so the
client is not what is measured. Every client uploads a file of its own: the shared body
followed by a 16-byte suffix naming the client, whose SHA-256 costs one ``hash.copy()`` of the
body's precomputed state — so the server's checksum of every upload can be verified cheaply.

The shared body is the same in every run and every process (``body``): the disk ceiling and
nginx's files hold exactly the bytes the servers receive (``content``).

Measured per run: bytes and uploads per second, PATCH latencies, HEAD latencies under the load
(a separate process asks HEAD of running uploads), and errors. ``fetch_all`` drives downloads the
same way (GETs received straight into a buffer, optionally hashed).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import multiprocessing
import multiprocessing.connection
import random
import statistics
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SUFFIX = 16
CRLF = b"\r\n"
READ = 1024 * 1024
BUFFER = 4 * READ  # what a connection reads ahead: asyncio's default 64 KiB caps downloads
SEED = 7
PIECE = 64 * 1024 * 1024
HEAD_INTERVAL = 0.02  # seconds between two HEADs of the prober


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
        length = sum(len(part) for part in body or [])
        writer = await self._send_head(method, path, {**headers, "Content-Length": str(length)})
        for part in body or []:
            writer.write(part)
            await writer.drain()
        await writer.drain()
        return await self._response(has_body=method != "HEAD")

    async def _send_head(
        self, method: str, path: str, headers: dict[str, str]
    ) -> asyncio.StreamWriter:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=BUFFER
            )
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.writer

    async def _response(self, has_body: bool) -> tuple[int, dict[str, str]]:
        status, headers = await self._head()
        assert self.reader is not None
        if not has_body:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":  # tus-node-server's
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                await self.reader.readexactly(size + len(CRLF))
            while await self.reader.readline() not in (CRLF, b""):
                pass
        else:
            await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers

    async def _head(self) -> tuple[int, dict[str, str]]:
        """The status line and headers of the next answer."""
        assert self.reader is not None
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (CRLF, b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
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


@functools.lru_cache(maxsize=1)
def body(size: int) -> bytes:
    """The bytes every upload of ``size`` shares (all but its last ``SUFFIX``): the same in
    every run and process, so ceilings can store exactly what the servers receive."""
    rng = random.Random(SEED)
    pieces = range(0, size - SUFFIX, PIECE)  # randbytes takes at most 2**31 bits at a time
    return b"".join(rng.randbytes(min(PIECE, size - SUFFIX - start)) for start in pieces)


def suffix(number: int) -> bytes:
    """What makes client ``number``'s file its own."""
    return number.to_bytes(SUFFIX, "big")


async def run(load: Load) -> tuple[Stats, float]:
    """Upload ``clients`` files at once; the statistics and the wall time."""
    parts = urlsplit(load.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body_ = memoryview(body(load.size))
    prefix = hashlib.sha256(body_)
    stats = Stats()

    async def client(number: int) -> None:
        own = suffix(number)
        expected = prefix.copy()
        expected.update(own)
        connection = Connection(host, port)
        headers = {"Tus-Resumable": "1.0.0", **load.headers(number)}
        try:
            status, answer = await connection.request(
                "POST",
                parts.path,
                {
                    **headers,
                    "Upload-Length": str(load.size),
                    "Upload-Metadata": _metadata(f"{number}.bin", "application/octet-stream"),
                },
            )
            if status != 201:
                raise RuntimeError(f"POST answered {status}")
            location = urlsplit(answer["location"]).path
            stats.locations[number] = location
            stats.checksums[location] = expected.hexdigest()
            prober.add(location, headers)
            offset = 0
            whole = [body_, memoryview(own)]
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

    prober = _Prober(host, port)
    await prober.ready()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(number) for number in range(load.clients)))
        wall = time.perf_counter() - started
    finally:
        latencies, errors = await prober.stop()
    stats.head_latencies += latencies
    stats.errors += errors
    return stats, wall


class _Prober:
    """Asks HEAD of running uploads every ``HEAD_INTERVAL`` from a process of its own.

    In the load generator's own event loop a HEAD waited behind hundreds of streaming clients:
    even the null server showed seconds of "HEAD latency". Its own process and loop leave the
    server's answer time alone in the measurement.
    """

    def __init__(self, host: str, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_probe, args=(host, port, child), daemon=True)
        self.process.start()
        child.close()

    async def ready(self) -> None:
        """Wait until the prober runs, so that even a short load is probed."""
        await asyncio.get_running_loop().run_in_executor(None, self.pipe.recv)

    def add(self, location: str, headers: dict[str, str]) -> None:
        self.pipe.send((location, headers))

    async def stop(self) -> tuple[list[float], list[str]]:
        self.pipe.send(None)
        answer: tuple[list[float], list[str]]
        answer = await asyncio.get_running_loop().run_in_executor(None, self.pipe.recv)
        self.process.join()
        return answer


def _probe(host: str, port: int, pipe: multiprocessing.connection.Connection) -> None:
    pipe.send(asyncio.run(_probes(host, port, pipe)))


async def _probes(
    host: str, port: int, pipe: multiprocessing.connection.Connection
) -> tuple[list[float], list[str]]:
    """HEAD a random known upload, wait, again — until the parent sends ``None``."""
    readable = asyncio.Event()
    asyncio.get_running_loop().add_reader(pipe.fileno(), readable.set)
    uploads: list[tuple[str, dict[str, str]]] = []
    latencies: list[float] = []
    errors: list[str] = []
    connection = Connection(host, port)
    rng = random.Random(0)
    pipe.send("ready")
    try:
        while True:
            readable.clear()
            while pipe.poll():
                if (item := pipe.recv()) is None:
                    return latencies, errors
                uploads.append(item)
            if not uploads:
                await readable.wait()
                continue
            location, headers = rng.choice(uploads)
            started = time.perf_counter()
            try:
                status, _ = await connection.request("HEAD", location, headers)
            except (OSError, ValueError) as exc:
                errors.append(f"HEAD {location}: {exc!r}")
                await connection.close()
                continue
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(f"HEAD {location} answered {status}")
            await asyncio.sleep(HEAD_INTERVAL)
    finally:
        await connection.close()


class _Receiver(asyncio.BufferedProtocol):
    """One GET's answer, received straight into a fixed buffer (no copies, reads as large as
    the buffer): asyncio's streams capped downloads from nginx at ~200-300 MiB/s here."""

    def __init__(self, digest: bool) -> None:
        self.view = memoryview(bytearray(READ))
        self.head = bytearray()
        self.status = 0
        self.length = 0
        self.remaining = -1  # until the headers are in
        self.hasher = hashlib.sha256() if digest else None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        if self.remaining >= 0:
            self._body(self.view[:nbytes])
            return
        self.head += self.view[:nbytes]
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        status_line, *lines = self.head[:end].decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }
        self.status = int(status_line.split()[1])
        self.length = self.remaining = int(headers.get("content-length", "0"))
        self._body(memoryview(self.head)[end + 4 :])

    def _body(self, piece: memoryview) -> None:
        if self.hasher is not None:
            self.hasher.update(piece)
        self.remaining -= len(piece)
        if self.remaining <= 0 and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed with {self.remaining} bytes to go"))


async def get(host: str, port: int, fetch: Fetch, digest: bool) -> tuple[int, int, str]:
    """GET on a connection of its own: the status, the body's length, its SHA-256 (or "")."""
    loop = asyncio.get_running_loop()
    transport, receiver = await loop.create_connection(lambda: _Receiver(digest), host, port)
    try:
        lines = [f"GET {fetch.path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in fetch.headers.items()]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await receiver.done
    finally:
        transport.close()
    sha256 = receiver.hasher.hexdigest() if receiver.hasher is not None else ""
    return receiver.status, receiver.length, sha256


@dataclass(frozen=True)
class Fetch:
    path: str
    headers: dict[str, str]
    expected: str = ""  # the SHA-256 the body must have; empty: not checked


async def fetch_all(
    url: str, fetches: list[Fetch], *, concurrency: int, digest: bool
) -> tuple[Stats, float]:
    """GET every fetch, ``concurrency`` at a time, one connection each; with ``digest`` every
    body's SHA-256 must equal its ``expected``. Bytes, downloads (as ``uploads``), the
    durations of whole GETs (as ``patch_latencies``), errors, and the wall time."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stats = Stats()
    queue = list(reversed(fetches))

    async def worker() -> None:
        while queue:
            fetch = queue.pop()
            started = time.perf_counter()
            try:
                status, length, sha256 = await get(host, port, fetch, digest)
            except (OSError, ValueError) as exc:
                stats.errors.append(f"GET {fetch.path}: {exc!r}")
                continue
            stats.patch_latencies.append(time.perf_counter() - started)
            stats.bytes += length
            if status != 200:
                stats.errors.append(f"GET {fetch.path} answered {status}")
            elif digest and sha256 != fetch.expected:
                stats.errors.append(f"GET {fetch.path}: SHA-256 {sha256} != {fetch.expected}")
            else:
                stats.uploads += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(fetches)))))
    return stats, time.perf_counter() - started


def _metadata(filename: str, filetype: str) -> str:
    """Upload-Metadata as Uppy sends it; tuspyserver's HEAD refuses an upload without both."""
    return ",".join(
        f"{key} {b64encode(value.encode()).decode()}"
        for key, value in (("filename", filename), ("filetype", filetype))
    )


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
