"""``X-Forwarded-Proto``, ``-Host`` and ``-For``, believed from trusted proxies only.

Behind nginx the gateway sees nginx's address, plain HTTP and an internal host name; the
forwarded headers restore the public scheme and host (so ``Location`` and signed links carry the
public URL) and the client's address (for the audit trail and the logs). Anyone else could
send those headers too, so they count only when the connection comes from ``trusted_proxies``;
of ``X-Forwarded-For`` the rightmost address that is not a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


class ForwardedHeaders:
    def __init__(self, app: ASGIApp, trusted: Sequence[str]) -> None:
        self.app = app
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in trusted]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client and self._trusted(client[0]):
            headers = Headers(scope=scope)
            proto = headers.get("x-forwarded-proto", "").strip().lower()
            if proto in ("http", "https"):
                scope["scheme"] = proto
            host = headers.get("x-forwarded-host", "").split(",")[0].strip()
            if _HOST.fullmatch(host):
                scope["headers"] = [
                    *((k, v) for k, v in scope["headers"] if k != b"host"),
                    (b"host", host.encode()),
                ]
            hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",")]
            for hop in reversed(hops):
                if not _is_address(hop):
                    break  # garbage: believe nothing further left
                if not self._trusted(hop):
                    scope["client"] = (hop, 0)
                    break
        await self.app(scope, receive, send)

    def _trusted(self, address: str) -> bool:
        if not _is_address(address):
            return False
        return any(ipaddress.ip_address(address) in network for network in self.networks)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
