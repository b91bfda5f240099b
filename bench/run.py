"""The benchmark: ``python -m bench.run [--quick]`` (README, "Performance").

Starts each target as a user would run it, drives it with the same load generator
(``bench/load.py``) and prints one table: throughput, uploads/s, PATCH latency, HEAD latency
under load, errors, the server's peak RSS and CPU seconds per GiB — with the ratio of each
row to the ceilings measured in the same run: a server that stores nothing (the null server),
and the same bytes written straight to disk and straight into the same S3 server.

Targets so far: the null server, tusgate on its filesystem store, tusgate on S3 (moto) with
PostgreSQL and Redis. The peers the performance issue names (tus-node-server, tuspyserver) are
not wired in yet; see bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aioboto3

from app.auth.local import LocalIssuer
from bench.load import Load, run, summary
from tests.gateways import embedded_env, services_env
from tests.services import (
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    Gateway,
    MotoServer,
    PostgresServer,
    RedisServer,
    free_port,
    wait_until,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
PART = 5 * MiB


@dataclass(frozen=True)
class Profile:
    clients: int
    size: int
    chunk: int


PROFILES = {
    "quick": Profile(clients=50, size=5 * MiB, chunk=5 * MiB),
    "full": Profile(clients=400, size=25 * MiB, chunk=5 * MiB),
}


class Usage:
    """Peak RSS and CPU time of a process, sampled from /proc while it is under load."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
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
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
            self.cpu_seconds = self.cpu() - before


def measure(name: str, pid: int, load: Load) -> dict[str, float | str]:
    usage = Usage(pid)
    with usage.watching():
        stats, wall = asyncio.run(run(load))
    row: dict[str, float | str] = {"target": name, **summary(stats, wall)}
    row["peak RSS MiB"] = usage.peak / MiB
    row["CPU s/GiB"] = usage.cpu_seconds / max(stats.bytes / GiB, 1e-9)
    for error in stats.errors[:3]:
        print(f"  {name}: {error}", file=sys.stderr)
    return row


def null_server(profile: Profile) -> dict[str, float | str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.null_server", str(port)])
    try:
        wait_until(lambda: _listening(port), timeout=10, what="the null server")
        load = Load(
            f"http://127.0.0.1:{port}/files/",
            profile.clients,
            profile.size,
            profile.chunk,
            lambda _: {},
        )
        return measure("null server (ceiling)", process.pid, load)
    finally:
        process.terminate()
        process.wait()


def gateway(name: str, env: dict[str, str], profile: Profile) -> dict[str, float | str]:
    data_dir = Path(env["TUSGATE_DATA_DIR"])
    issuer = LocalIssuer.from_file(data_dir / "local-issuer.jwk")
    env = {
        **env,
        "TUSGATE_LOCAL_ISSUER_KEY_FILE": str(data_dir / "local-issuer.jwk"),
        "TUSGATE_LOG_FORMAT": "json",
        "TUSGATE_QUOTA_MAX_UPLOADS": "100000",
    }
    server = Gateway(env)
    server.start()
    try:
        tokens = {
            number: issuer.issue(f"bench-{number}", [], 3600) for number in range(profile.clients)
        }
        load = Load(
            f"{server.url}/files/",
            profile.clients,
            profile.size,
            profile.chunk,
            lambda number: {"Authorization": f"Bearer {tokens[number]}"},
        )
        row = measure(name, server.pid, load)
        return row
    finally:
        server.close()


def disk_ceiling(profile: Profile, directory: Path) -> dict[str, float | str]:
    """The same bytes written straight to files, one thread per client (bounded by 2 cores)."""
    body = os.urandom(profile.size)
    started = time.perf_counter()

    def write(number: int) -> None:
        with (directory / f"direct-{number}").open("wb") as file:
            for start in range(0, profile.size, profile.chunk):
                file.write(memoryview(body)[start : start + profile.chunk])
            file.flush()
            os.fsync(file.fileno())

    threads = [threading.Thread(target=write, args=(n,)) for n in range(profile.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "target": "disk, direct (ceiling)",
        "MiB/s": profile.clients * profile.size / MiB / wall,
    }


async def _s3_direct(profile: Profile, endpoint: str, bucket: str) -> float:
    body = os.urandom(profile.size)
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
    ) as s3:

        async def one(number: int) -> None:
            key = f"direct-{number}"
            upload = await s3.create_multipart_upload(Bucket=bucket, Key=key)
            parts = []
            for index, start in enumerate(range(0, profile.size, PART), 1):
                answer = await s3.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload["UploadId"],
                    PartNumber=index,
                    Body=body[start : start + PART],
                )
                parts.append({"PartNumber": index, "ETag": answer["ETag"]})
            await s3.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload["UploadId"],
                MultipartUpload={"Parts": parts},
            )

        started = time.perf_counter()
        await asyncio.gather(*(one(number) for number in range(profile.clients)))
        return time.perf_counter() - started


def s3_ceiling(profile: Profile, moto: MotoServer) -> dict[str, float | str]:
    moto.create_bucket("direct")
    wall = asyncio.run(_s3_direct(profile, moto.endpoint_url, "direct"))
    return {
        "target": "S3 server, direct multipart (ceiling)",
        "MiB/s": profile.clients * profile.size / MiB / wall,
    }


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def table(rows: list[dict[str, float | str]]) -> str:
    columns = [
        "target",
        "MiB/s",
        "uploads/s",
        "PATCH p50 ms",
        "PATCH p95 ms",
        "PATCH p99 ms",
        "HEAD p99 ms",
        "errors",
        "peak RSS MiB",
        "CPU s/GiB",
        "vs null",
        "vs direct",
    ]
    null = next(float(r["MiB/s"]) for r in rows if str(r["target"]).startswith("null"))
    direct = {str(r["target"]): float(r["MiB/s"]) for r in rows if "direct" in str(r["target"])}
    lines = [" | ".join(columns), " | ".join("---" for _ in columns)]
    for row in rows:
        speed = float(row["MiB/s"])
        row["vs null"] = speed / null
        ceiling = next(
            (v for k, v in direct.items() if ("S3" in k) == ("S3" in str(row["target"]))), None
        )
        if ceiling and str(row["target"]).startswith("tusgate"):
            row["vs direct"] = speed / ceiling
        lines.append(" | ".join(_cell(row.get(column, "")) for column in columns))
    return "\n".join("| " + line + " |" for line in lines)


def _cell(value: float | str) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 clients x 5 MiB (≈ a minute)")
    profile = PROFILES["quick" if parser.parse_args().quick else "full"]
    rows = [null_server(profile)]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "fs").mkdir()
        rows.append(gateway("tusgate, filesystem", embedded_env(root / "fs"), profile))
        (root / "direct").mkdir()
        rows.append(disk_ceiling(profile, root / "direct"))
        with PostgresServer() as postgres, RedisServer() as redis, MotoServer() as moto:
            (root / "s3").mkdir()
            env = services_env(root / "s3", postgres, redis, moto)
            rows.append(gateway("tusgate, S3 + PostgreSQL + Redis", env, profile))
            rows.append(s3_ceiling(profile, moto))
    print(
        f"{profile.clients} clients x {profile.size // MiB} MiB in {profile.chunk // MiB} MiB"
        f" PATCHes, {os.cpu_count()} cores"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
