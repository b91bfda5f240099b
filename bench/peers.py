"""The peers, installed from their registries and started as their users would run them.

tus-node-server (``@tus/server`` with ``@tus/file-store`` or ``@tus/s3-store``) runs under node
from ``bench/peers/tus-node`` (versions pinned in its package-lock.json, installed with
``npm ci``); tuspyserver runs under uvicorn from ``bench/peers/tuspyserver`` in a virtual
environment of its own (pinned in its requirements.txt: its FastAPI/pydantic pins are not ours).
Both installs are skipped when the pinned files have not changed since the last one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

PEERS = Path(__file__).resolve().parent / "peers"
TUS_NODE = PEERS / "tus-node"
TUSPYSERVER = PEERS / "tuspyserver"


def _stamp(*files: Path) -> str:
    return hashlib.sha256(b"".join(file.read_bytes() for file in files)).hexdigest()


def _install(marker: Path, wanted: str, commands: list[list[str]], cwd: Path) -> None:
    if marker.exists() and marker.read_text() == wanted:
        return
    for command in commands:
        print(f"bench: {' '.join(command)} (in {cwd})", file=sys.stderr)
        subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    marker.write_text(wanted)


def install() -> None:
    """``npm ci`` for tus-node-server, a venv with tuspyserver: each only when its pins changed."""
    _install(
        TUS_NODE / "node_modules" / ".bench-installed",
        _stamp(TUS_NODE / "package-lock.json"),
        [["npm", "ci", "--no-audit", "--no-fund"]],
        TUS_NODE,
    )
    venv = TUSPYSERVER / ".venv"
    _install(
        venv / ".bench-installed",
        _stamp(TUSPYSERVER / "requirements.txt"),
        [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "pip"), "install", "--quiet", "-r", "requirements.txt"],
        ],
        TUSPYSERVER,
    )


def tus_node_command(port: int, kind: str, where: str) -> list[str]:
    """``kind`` "file" (``where``: a directory) or "s3" (``where``: a bucket)."""
    return ["node", str(TUS_NODE / "server.mjs"), str(port), kind, where]


def tuspyserver_command(port: int) -> tuple[list[str], Path]:
    """The command and its working directory (the app module lives there)."""
    uvicorn = TUSPYSERVER / ".venv" / "bin" / "uvicorn"
    command = [str(uvicorn), "app:app", "--host", "127.0.0.1", "--port", str(port)]
    return [*command, "--log-level", "warning", "--no-access-log"], TUSPYSERVER


def s3_env(endpoint: str, region: str, access_key: str, secret_key: str) -> dict[str, str]:
    return {
        **os.environ,
        "BENCH_S3_ENDPOINT": endpoint,
        "BENCH_S3_REGION": region,
        "BENCH_S3_ACCESS_KEY": access_key,
        "BENCH_S3_SECRET_KEY": secret_key,
    }
