"""nginx from Debian in front of gateway instances, with the production config
(``nginx/tusgate.conf.template``) and a throwaway self-signed certificate."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path
from string import Template

from tests.services import (
    REPO_ROOT,
    ServiceError,
    _ChildProcess,
    _wait_for_process,
    free_port,
)

TEMPLATE = REPO_ROOT / "nginx" / "tusgate.conf.template"
WEB_ROOT = REPO_ROOT / "web" / "dist"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, valid a day, and its key."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class Nginx(_ChildProcess):
    def __init__(self, upstreams: list[str]) -> None:
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(self.binary).exists():
            raise ServiceError("nginx not found (install the Debian package nginx)")
        self.port = free_port()
        self.http_port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tusgate-nginx-"))
        self.log_path = self.root / "error.log"
        self.access_log = self.root / "access.log"
        self.upstreams = upstreams
        self.cert = self.root / "tls.crt"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def trusting(self) -> ssl.SSLContext:
        """A TLS context that trusts this nginx's certificate (and nothing else)."""
        return ssl.create_default_context(cafile=self.cert)

    def start(self) -> None:
        cert, key = self_signed(self.root)
        assert cert == self.cert
        servers = " ".join(f"server {u} max_fails=1 fail_timeout=10s;" for u in self.upstreams)
        site = Template(TEMPLATE.read_text()).safe_substitute(
            TUSGATE_SERVER_NAME="localhost 127.0.0.1",
            TUSGATE_HTTPS_PORT=str(self.port),
            TUSGATE_HTTP_PORT=str(self.http_port),
            TUSGATE_TLS_CERT=str(cert),
            TUSGATE_TLS_KEY=str(key),
            TUSGATE_UPSTREAM_SERVERS=servers,
            TUSGATE_WEB_ROOT=str(WEB_ROOT),
            TUSGATE_MAX_BODY="1100m",
            TUSGATE_ACCESS_LOG=str(self.access_log),
        )
        (self.root / "tusgate.conf").write_text(site)
        temp = self.root / "temp"
        temp.mkdir()
        temp.chmod(0o777)
        paths = "\n".join(
            f"    {kind}_temp_path {temp / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.root / "nginx.conf").write_text(
            f"worker_processes 2;\npid {self.root / 'nginx.pid'};\n"
            f"error_log {self.log_path} info;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n    include /etc/nginx/mime.types;\n{paths}\n"
            f"    include {self.root / 'tusgate.conf'};\n}}\n"
        )
        with (self.root / "stdout.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    "-p",
                    str(self.root),
                    "-c",
                    str(self.root / "nginx.conf"),
                    "-g",
                    "daemon off;",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_for_process(self._proc, self._answers, what="nginx", log_path=self.log_path)

    def _answers(self) -> bool:
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw,
                self.trusting().wrap_socket(raw, server_hostname="127.0.0.1"),
            ):
                return True
        except OSError:
            return False
