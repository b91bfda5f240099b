"""The benchmark: ``python -m bench.run [--quick]`` (README, "Performance"; bench/RESULTS.md).

In one run on one machine, every target started as its users would run it and driven by the
same load generator (``bench/load.py``), each scenario on a freshly started process:

1. ``clients`` concurrent uploads of ``size`` bytes in ``chunk``-byte PATCHes: tusgate on its
   filesystem store (SQLite, no Redis; under each ASGI server it offers) and on S3 (moto) with
   PostgreSQL and Redis, beside tus-node-server (file and S3 stores), tuspyserver (local
   storage), a server that stores nothing, and the ceilings: the same bytes written straight to
   disk and straight into the same S3 server (aioboto3 multipart, same part size). Every upload
   is then read back from where the server stored it and its SHA-256 compared.
2. One big upload (filesystem; a smaller one on S3, whose stand-in holds objects in RAM).
3. Downloads: every file of scenario 1 at once, then the big file, from tusgate's filesystem
   store and from nginx serving the same bytes from disk (the ceiling).
4. The cost curve: tusgate (filesystem) at 1, 10, 100, 400 and 1,000 clients.

It prints one table per scenario, with each tusgate row's ratio to the peers on the same store
and to the ceilings measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from app.settings import SERVERS, Settings
from bench import nginx, peers, targets
from bench.load import Fetch, Load, Stats, body, fetch_all, run, suffix, summary
from bench.targets import FILESYSTEM, S3, Target
from tests.gateways import embedded_env, services_env
from tests.services import (
    MotoServer,
    PostgresServer,
    RedisServer,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
PART = 5 * MiB

Row = dict[str, float | str]
DEFAULT_SERVER = Settings().server
PARTS = ["fs", "s3", "big", "downloads", "curve"]
Starter = Callable[[], AbstractContextManager[Target]]


@dataclass(frozen=True)
class Profile:
    clients: int
    size: int
    chunk: int
    s3_size: int  # per upload on the S3 server, which holds every object in RAM
    big: int  # scenario 2, filesystem
    big_s3: int  # scenario 2, S3
    curve: tuple[int, ...]
    curve_size: int


PROFILES = {
    "quick": Profile(
        clients=20,
        size=5 * MiB,
        chunk=5 * MiB,
        s3_size=5 * MiB,
        big=64 * MiB,
        big_s3=64 * MiB,
        curve=(1, 10, 50),
        curve_size=1 * MiB,
    ),
    "full": Profile(
        clients=400,
        size=25 * MiB,
        chunk=5 * MiB,
        s3_size=10 * MiB,
        big=GiB,
        big_s3=256 * MiB,
        curve=(1, 10, 100, 400, 1000),
        curve_size=10 * MiB,
    ),
}


class Usage:
    """Peak RSS and CPU time of a process, sampled from /proc while it is under load."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._rss())

    @contextmanager
    def watching(self) -> Iterator[Usage]:
        before = self.cpu()
        self.peak = self._rss()
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
            self.cpu_seconds = self.cpu() - before


def _row(target: Target, stats: Stats, wall: float, usage: Usage | None) -> Row:
    row: Row = {"target": target.name, "kind": target.kind, "store": target.store}
    row.update(summary(stats, wall))
    if usage is not None:
        row["peak RSS MiB"] = usage.peak / MiB
        row["CPU s/GiB"] = usage.cpu_seconds / max(stats.bytes / GiB, 1e-9)
    kinds = Counter(re.sub(r"client \d+: |/(files|download)/\S+", "", e) for e in stats.errors)
    for kind, count in kinds.most_common(5):
        print(f"  {target.name}: {count} x {kind}", file=sys.stderr)
    return row


def upload(target: Target, clients: int, size: int, chunk: int) -> Row:
    """Scenario 1, 2 or 4 on ``target``: the uploads, then every SHA-256 read back."""
    load = Load(target.url, clients, size, chunk, target.headers)
    usage = Usage(target.pid)
    with usage.watching():
        stats, wall = asyncio.run(run(load))
    mismatches = asyncio.run(target.check(stats))
    stats.errors.extend(mismatches)
    row = _row(target, stats, wall, usage)
    row["SHA-256 ok"] = float(len(stats.checksums) - len(mismatches))
    print(f"bench: {target.name}: {row['MiB/s']:.1f} MiB/s", file=sys.stderr)
    return row


def download(target: Target, url: str, pid: int, fetches: list[Fetch]) -> Row:
    usage = Usage(pid)
    with usage.watching():
        stats, wall = asyncio.run(fetch_all(url, fetches, concurrency=len(fetches), digest=False))
    stats.uploads = len(fetches) - len(stats.errors)
    row = _row(target, stats, wall, usage)
    print(f"bench: {target.name} (download): {row['MiB/s']:.1f} MiB/s", file=sys.stderr)
    return row


def disk_ceiling(clients: int, size: int, chunk: int, directory: Path, name: str) -> Row:
    """The same bytes written straight to files, one thread per client, each fsynced; the
    files stay for nginx (scenario 3)."""
    shared = memoryview(body(size))
    started = time.perf_counter()

    def write(number: int) -> None:
        with (directory / f"{name}-{number}").open("wb") as file:
            for start in range(0, len(shared), chunk):
                file.write(shared[start : start + chunk])
            file.write(suffix(number))
            file.flush()
            os.fsync(file.fileno())

    threads = [threading.Thread(target=write, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "target": "disk, direct (ceiling)",
        "kind": "ceiling",
        "store": FILESYSTEM,
        "MiB/s": clients * size / MiB / wall,
    }


async def _s3_direct(clients: int, size: int, moto: MotoServer, bucket: str) -> float:
    shared = body(size)
    async with targets.s3_client(moto) as s3:

        async def one(number: int) -> None:
            key = f"direct-{number}"
            whole = shared + suffix(number)
            upload = await s3.create_multipart_upload(Bucket=bucket, Key=key)
            parts = []
            for index, start in enumerate(range(0, size, PART), 1):
                answer = await s3.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload["UploadId"],
                    PartNumber=index,
                    Body=whole[start : start + PART],
                )
                parts.append({"PartNumber": index, "ETag": answer["ETag"]})
            await s3.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload["UploadId"],
                MultipartUpload={"Parts": parts},
            )

        started = time.perf_counter()
        await asyncio.gather(*(one(number) for number in range(clients)))
        return time.perf_counter() - started


def s3_ceiling(clients: int, size: int, moto: MotoServer) -> Row:
    moto.create_bucket("direct")
    wall = asyncio.run(_s3_direct(clients, size, moto, "direct"))
    return {
        "target": "S3 server, direct multipart (ceiling)",
        "kind": "ceiling",
        "store": S3,
        "MiB/s": clients * size / MiB / wall,
    }


def with_ratios(rows: list[Row]) -> list[Row]:
    """Each tusgate row's ratio to the null server, the ceiling and each peer on its store."""
    speeds = {(str(r["kind"]), str(r["store"])): float(r["MiB/s"]) for r in rows}
    null = next((float(r["MiB/s"]) for r in rows if r["kind"] == "null"), None)
    for row in rows:
        if row["kind"] != "tusgate":
            continue
        speed, store = float(row["MiB/s"]), str(row["store"])
        if null:
            row["vs null"] = speed / null
        for kind, column in (
            ("ceiling", "vs ceiling"),
            ("tus-node-server", "vs tus-node"),
            ("tuspyserver", "vs tuspyserver"),
        ):
            if speeds.get((kind, store)):
                row[column] = speed / speeds[(kind, store)]
    return rows


UPLOAD_COLUMNS = [
    "target",
    "MiB/s",
    "uploads/s",
    "PATCH p50 ms",
    "PATCH p95 ms",
    "PATCH p99 ms",
    "HEAD p99 ms",
    "errors",
    "SHA-256 ok",
    "peak RSS MiB",
    "CPU s/GiB",
    "vs null",
    "vs ceiling",
    "vs tus-node",
    "vs tuspyserver",
]
DOWNLOAD_COLUMNS = [
    "target",
    "MiB/s",
    "uploads/s",
    "PATCH p50 ms",
    "PATCH p99 ms",
    "errors",
    "peak RSS MiB",
    "CPU s/GiB",
    "vs ceiling",
]
DOWNLOAD_NAMES = {
    "uploads/s": "downloads/s",
    "PATCH p50 ms": "GET p50 ms",
    "PATCH p99 ms": "GET p99 ms",
}
CURVE_COLUMNS = ["clients", "MiB/s", "PATCH p99 ms", "HEAD p99 ms", "errors", "peak RSS MiB"]


def table(rows: list[Row], columns: list[str], names: dict[str, str] | None = None) -> str:
    names = names or {}
    header = [names.get(column, column) for column in columns]
    lines = [" | ".join(header), " | ".join("---" for _ in columns)]
    lines += [" | ".join(_cell(row.get(column, "")) for column in columns) for row in rows]
    return "\n".join("| " + line + " |" for line in lines)


def _cell(value: float | str) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) < 1e6 else f"{value:.2f}"
    return str(value)


@dataclass
class Bench:
    profile: Profile
    root: Path

    def scratch(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))
        return path

    def clear(self) -> None:
        """Remove what the targets measured so far stored: the full profile writes 10 GiB per
        target, more than a disk holds over a whole run."""
        for path in self.root.iterdir():
            shutil.rmtree(path, ignore_errors=True)

    def fs_starters(self, servers: tuple[str, ...]) -> list[Starter]:
        """tusgate under each of ``servers``, then the peers on their local storage."""

        def gateway(server: str) -> Starter:
            name = f"tusgate, filesystem (SQLite), {server}"
            return lambda: targets.tusgate(
                name, FILESYSTEM, {**embedded_env(self.scratch("gw")), "TUSGATE_SERVER": server}
            )

        return [
            *(gateway(server) for server in servers),
            lambda: targets.tus_node_file(self.scratch("tus-node")),
            lambda: targets.tuspyserver(self.scratch("tuspy")),
        ]

    def uploads_filesystem(
        self, clients: int, size: int, servers: tuple[str, ...] = (DEFAULT_SERVER,)
    ) -> list[Row]:
        p = self.profile
        rows = []
        for start in self.fs_starters(servers):
            with start() as target:
                rows.append(upload(target, clients, size, p.chunk))
            self.clear()
        ceiling = self.scratch("direct")
        rows.append(disk_ceiling(clients, size, p.chunk, ceiling, "direct"))
        self.clear()
        return rows

    def uploads_s3(self, clients: int, size: int) -> list[Row]:
        rows = []
        with PostgresServer() as postgres, RedisServer() as redis, MotoServer() as moto:
            env = services_env(self.scratch("gw-s3"), postgres, redis, moto)
            with targets.tusgate("tusgate, S3 + PostgreSQL + Redis", S3, env) as target:
                rows.append(upload(target, clients, size, self.profile.chunk))
            moto.reset()
            with targets.tus_node_s3(moto) as target:
                rows.append(upload(target, clients, size, self.profile.chunk))
            moto.reset()
            rows.append(s3_ceiling(clients, size, moto))
        self.clear()
        return rows

    def downloads(self) -> list[Row]:
        """tusgate's filesystem store against nginx serving the same bytes from disk. Each
        serves the files just written for it, then they are removed: both on the same footing.
        (nginx served the first files of the run while tusgate wrote 11 GiB after them, and
        read more of them back from the disk: one 1 GiB download 650 MiB/s, 1,400-1,900
        alone. On this VM both still read part of their files from the disk.)"""
        ceilings = self._nginx_downloads()
        self.clear()
        rows = self._gateway_downloads()
        self.clear()
        for row in rows:
            nginx_row = next(r for r in ceilings if r["scenario"] == row["scenario"])
            row["vs ceiling"] = float(row["MiB/s"]) / float(nginx_row["MiB/s"])
        return rows + ceilings

    def _nginx_downloads(self) -> list[Row]:
        p = self.profile
        files = self.scratch("nginx")
        for readable in (self.root, files):  # nginx may serve as another user
            readable.chmod(0o755)
        disk_ceiling(p.clients, p.size, p.chunk, files, "many")
        disk_ceiling(1, p.big, p.chunk, files, "big")
        rows = []
        with nginx.static(files) as (url, pid):
            for clients, size, label in ((p.clients, p.size, "many"), (1, p.big, "big")):
                ceiling = Target(
                    f"nginx, sendfile: {_what(clients, size)}",
                    "ceiling",
                    FILESYSTEM,
                    url,
                    pid,
                    targets.no_headers,
                    targets.nothing_to_check,
                )
                fetches = [Fetch(f"/{label}-{number}", {}) for number in range(clients)]
                row = download(ceiling, url, pid, fetches)
                row["scenario"] = label
                rows.append(row)
        return rows

    def _gateway_downloads(self) -> list[Row]:
        p = self.profile
        rows = []
        env = embedded_env(self.scratch("gw-down"))
        with targets.tusgate("tusgate, filesystem (SQLite)", FILESYSTEM, env) as gateway:
            for clients, size, label in ((p.clients, p.size, "many"), (1, p.big, "big")):
                load = Load(gateway.url, clients, size, p.chunk, gateway.headers)
                stats, _ = asyncio.run(run(load))
                base = gateway.url.removesuffix("/files/")
                fetches = [
                    Fetch(f"/download/{stats.checksums[location]}", gateway.headers(number))
                    for number, location in stats.locations.items()
                ]
                row = download(gateway, base, gateway.pid, fetches)
                row["target"] = f"{gateway.name}: {_what(clients, size)}"
                row["scenario"] = label
                rows.append(row)
        return rows

    def curve(self) -> list[Row]:
        rows = []
        p = self.profile
        for clients in p.curve:
            env = embedded_env(self.scratch("gw-curve"))
            with targets.tusgate("tusgate, filesystem (SQLite)", FILESYSTEM, env) as target:
                row = upload(target, clients, p.curve_size, p.chunk)
                row["clients"] = float(clients)
                rows.append(row)
            self.clear()
        return rows


def _what(clients: int, size: int) -> str:
    return f"{clients} x {size // MiB} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small profile: under 2 minutes")
    parser.add_argument("--clients", type=int, help="scenario 1: concurrent uploads")
    parser.add_argument("--size-mib", type=int, help="scenario 1: MiB per upload")
    parser.add_argument("--s3-size-mib", type=int, help="scenario 1 on S3: MiB per upload")
    parser.add_argument("--big-mib", type=int, help="scenario 2: MiB of the big upload")
    parser.add_argument("--curve-mib", type=int, help="scenario 4: MiB per upload")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        default=PARTS,
        help="run only these parts (default: all)",
    )
    args = parser.parse_args()
    profile = PROFILES["quick" if args.quick else "full"]
    if args.clients:
        profile = replace(profile, clients=args.clients)
    if args.size_mib:
        profile = replace(profile, size=args.size_mib * MiB)
    if args.s3_size_mib:
        profile = replace(profile, s3_size=args.s3_size_mib * MiB)
    if args.big_mib:
        profile = replace(profile, big=args.big_mib * MiB)
    if args.curve_mib:
        profile = replace(profile, curve_size=args.curve_mib * MiB)
    peers.install()
    started = time.perf_counter()
    p = profile
    print(f"# tusgate benchmark: {os.cpu_count()} cores", flush=True)

    def section(title: str, text: str) -> None:
        print(f"\n## {title}\n\n{text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="tusgate-bench-") as scratch:
        bench = Bench(profile, Path(scratch))
        with targets.null_server() as null:
            ceiling = upload(null, p.clients, p.size, p.chunk)
        if "fs" in args.only:
            rows = [ceiling, *bench.uploads_filesystem(p.clients, p.size, SERVERS)]
            title = f"1. {_what(p.clients, p.size)} uploads in {p.chunk // MiB} MiB PATCHes"
            section(f"{title}, filesystem", table(with_ratios(rows), UPLOAD_COLUMNS))
        if "s3" in args.only:
            rows = [ceiling, *bench.uploads_s3(p.clients, p.s3_size)]
            title = f"1. {_what(p.clients, p.s3_size)} uploads, S3 (moto)"
            section(title, table(with_ratios(rows), UPLOAD_COLUMNS))
        if "big" in args.only:
            rows = bench.uploads_filesystem(1, p.big) + bench.uploads_s3(1, p.big_s3)
            title = f"2. one upload: {p.big // MiB} MiB (filesystem), {p.big_s3 // MiB} MiB (S3)"
            section(title, table(with_ratios(rows), UPLOAD_COLUMNS))
        if "downloads" in args.only:
            title = "3. downloads, against nginx serving the same bytes from disk"
            section(title, table(bench.downloads(), DOWNLOAD_COLUMNS, DOWNLOAD_NAMES))
        if "curve" in args.only:
            title = f"4. cost curve: tusgate, filesystem, {p.curve_size // MiB} MiB per upload"
            section(title, table(bench.curve(), CURVE_COLUMNS))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
