"""Throwaway PostgreSQL, Redis, S3 (moto) and gateway processes for the test suite.

Every service binds 127.0.0.1 on a free port, keeps its files in its own temporary directory and
is stopped and removed by `close()` (or by leaving its `with` block), even after a failed test.
Plain functions and classes, no pytest: fixtures in conftest.py and ad-hoc scripts share them.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import boto3

REPO_ROOT = Path(__file__).resolve().parent.parent
S3_ACCESS_KEY = "test"
S3_SECRET_KEY = "test"
S3_REGION = "us-east-1"

# Our own calls to 127.0.0.1 must never go through a proxy named in the environment.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServiceError(RuntimeError):
    """A test service could not be started, or stopped answering."""


def free_port() -> int:
    """A port that was free a moment ago: the kernel picks it, the service binds it next."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; the deadline turns a hung service into a clear error."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def http_status(method: str, url: str, *, timeout: float = 2.0) -> int | None:
    """The status of one request, or None when nothing answered."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with _http.open(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class _Service(abc.ABC):
    """`with` support shared by the services: a failed start still cleans up."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the service and delete its files; safe to call more than once."""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _stop_process(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_process(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    what: str,
    log_path: Path,
    timeout: float = 30.0,
) -> None:
    """Wait until `ready`, failing at once (with the log) if the process dies first."""

    def ready_or_dead() -> bool:
        if proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode}:\n{log_tail(log_path)}")
        return ready()

    try:
        wait_until(ready_or_dead, timeout=timeout, what=what)
    except ServiceError as exc:
        if proc.poll() is None:
            raise ServiceError(f"{exc}\n--- log ---\n{log_tail(log_path)}") from None
        raise


def _postgres_bin() -> Path:
    """The newest installed server version, where Debian's postgresql packages put it."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise ServiceError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(install postgresql-15)"
        )
    return versions[-1]


class PostgresServer(_Service):
    """A private PostgreSQL cluster: trust auth, user `postgres`, durability off for speed.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` user and
    initdb/pg_ctl run through `runuser`.
    """

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        # As root the cluster is run by `postgres`, who must be able to reach it: /tmp is 1777.
        self.root = Path(
            tempfile.mkdtemp(prefix="tusgate-pg-", dir="/tmp" if self._as_root else None)
        )
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._running = False
        self._initialised = False

    @property
    def url(self) -> str:
        """The `postgres` maintenance database; tests get their own through `new_database`."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str | Path) -> None:
        command = [str(a) for a in args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, cwd=self.root, stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
        if result.returncode != 0:
            raise ServiceError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}"
                f"\n--- server log ---\n{log_tail(self.log_path)}"
            )

    def _initdb(self) -> None:
        if self._as_root:
            # mkdtemp makes the directory 0700 for root; hand it over so postgres can use it.
            shutil.chown(self.root, user="postgres", group="postgres")
        self._run(
            self.bin / "initdb",
            "-D",
            self.data_dir,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        )
        self._initialised = True

    def start(self) -> None:
        if not self._initialised:
            self._initdb()
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.root}",
                "-c listen_addresses=127.0.0.1",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        pg_ctl = self.bin / "pg_ctl"
        self._run(pg_ctl, "-D", self.data_dir, "-l", self.log_path, "-w", "-o", options, "start")
        self._running = True

    def stop(self, *, mode: Literal["immediate", "fast", "smart"] = "immediate") -> None:
        """Stop the server; `immediate` (no checkpoint) unless told otherwise.

        With synchronous_commit=off an immediate stop loses the last transactions that were
        committed but not yet written: fine for teardown, wrong for a restart.
        """
        if self._running:
            self._run(self.bin / "pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "stop")
            self._running = False

    def restart(self) -> None:
        """Drop every client connection and come back on the same port with the same data."""
        self.stop(mode="fast")
        self.start()

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run SQL as the superuser; for set-up steps, not for the code under test."""
        result = subprocess.run(
            [
                self.bin / "psql",
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"psql failed: {sql!r}\n{result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def new_database(self) -> str:
        """A fresh empty database; returns its SQLAlchemy/databases URL.

        Databases are never dropped one by one (a drop costs more than a create): the whole
        cluster goes at `close`.
        """
        name = f"test_{uuid.uuid4().hex[:16]}"
        # ~0.08 s here; STRATEGY file_copy checkpoints twice and takes ~0.4 s.
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class _ChildProcess(_Service):
    """A service that is one child process with a temporary directory of its own."""

    _proc: subprocess.Popen[bytes] | None
    root: Path

    def stop(self) -> None:
        if self._proc is not None:
            _stop_process(self._proc)
            self._proc = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class RedisServer(_ChildProcess):
    """A Redis with no persistence at all: nothing outlives the process."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise ServiceError("redis-server not found on PATH (install redis-server)")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tusgate-redis-"))
        self.log_path = self.root / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self, *words: bytes) -> bytes:
        """One RESP command over a raw socket: enough to probe and flush without a client."""
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(request)
            return sock.recv(1024)

    def ping(self) -> bool:
        try:
            return self._command(b"PING").startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        # Database 0 only: gateways under test keep their locks in database 1.
        reply = self._command(b"FLUSHDB")
        if not reply.startswith(b"+OK"):
            raise ServiceError(f"FLUSHDB answered {reply!r}")

    def start(self) -> None:
        assert self.binary is not None
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    *(self.binary, "--bind", "127.0.0.1", "--port", str(self.port)),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.root)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_for_process(self._proc, self.ping, what="redis-server", log_path=self.log_path)


class MotoServer(_ChildProcess):
    """moto's S3 in its own process, so the code under test reaches it over real HTTP."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tusgate-moto-"))
        self.log_path = self.root / "moto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        return http_status("GET", f"{self.endpoint_url}/moto-api/") is not None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_for_process(self._proc, self._answers, what="moto server", log_path=self.log_path)

    def reset(self) -> None:
        """Forget every bucket and object: seconds after the benchmark's 4 GiB of uploads."""
        status = http_status("POST", f"{self.endpoint_url}/moto-api/reset", timeout=120)
        if status != 200:
            raise ServiceError(f"moto reset answered {status}")

    def client(self) -> Any:
        """A boto3 S3 client for the fixed test credentials (boto3 ships no type stubs)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name=S3_REGION,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


class Gateway(_Service):
    """`python -m app serve` as a separate process, for end-to-end and crash tests.

    `env` (TUSGATE_* settings) is laid over os.environ. The process leads its own process
    group, so `kill` also reaches any worker it forked. `start` after `kill`/`stop` brings it
    back on the same port with the same environment; the log accumulates across runs.
    """

    def __init__(self, env: Mapping[str, str], *, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.env = {**os.environ, **env}
        self.root = Path(tempfile.mkdtemp(prefix="tusgate-gw-"))
        self.log_path = self.root / "gateway.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def command(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "app",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    @property
    def pid(self) -> int:
        return self._running().pid

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise ServiceError(f"the gateway is not running\n{log_tail(self.log_path)}")
        return self._proc

    def _healthy(self) -> bool:
        return http_status("GET", f"{self.url}/healthz", timeout=1.0) == 200

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            raise ServiceError("the gateway is already running")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_for_process(
                self._proc, self._healthy, what="gateway /healthz", log_path=self.log_path
            )
        except ServiceError:
            self.kill()
            raise

    def wait(self, timeout: float) -> int:
        """Wait for the gateway to exit by itself (after a SIGTERM, say); its exit code."""
        if self._proc is None:
            raise ServiceError("the gateway was never started")
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ServiceError(f"the gateway did not exit\n{log_tail(self.log_path)}") from None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> int | None:
        """Send `sig` to the whole process group and wait for the gateway to exit; its code."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(30.0)
        except subprocess.TimeoutExpired:
            raise ServiceError(
                f"the gateway ignored {sig.name}\n{log_tail(self.log_path)}"
            ) from None

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """Graceful shutdown (SIGTERM); SIGKILL for the whole group if it overstays `timeout`."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Reap stray workers of the group even after a clean exit of the leader.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far; a line still being written is left out."""
        complete = self.log_path.read_text().split("\n")[:-1]
        return [json.loads(line) for line in complete if line.startswith("{")]

    def rss_bytes(self) -> int:
        """Resident memory of the gateway's main process now, from /proc."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise ServiceError("no VmRSS line in /proc status")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
