"""nginx serving a directory's files as they are (sendfile), the ceiling of the downloads.

One process (``master_process off``), like one gateway instance, so its RSS and CPU time are
those of the process that serves; started unprivileged with every path under its own directory
(shared/MACHINE.md).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.services import _wait_for_process, free_port, http_status


@contextmanager
def static(files: Path) -> Iterator[tuple[str, int]]:
    """nginx serving ``files`` at its root until the block ends: its URL and its pid."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    temp = "\n".join(
        f"    {kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (root / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\nworker_processes 1;\npid {root / 'nginx.pid'};\n"
        f"error_log {root / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n    access_log off;\n    sendfile on;\n    tcp_nopush on;\n{temp}\n"
        f"    server {{\n        listen 127.0.0.1:{port};\n        root {files};\n    }}\n}}\n"
    )
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_process(
            process,
            lambda: http_status("GET", f"{url}/absent") is not None,
            what="nginx",
            log_path=root / "error.log",
        )
        yield url, process.pid
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(root, ignore_errors=True)
