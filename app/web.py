"""The web page: the built front end (``web/``) at ``/``, and ``GET /api/config``, what the page
must know before anyone signs in (how to sign in, where and how to upload).

The page's files are public (they hold no data; the page asks the API for everything with the
user's token). Each of them goes out with a Content-Security-Policy that the page satisfies —
scripts and styles from this origin only, requests to this origin and, in OIDC mode, to the
identity provider — and ``Referrer-Policy: no-referrer``, so that no URL of the page is ever
sent to another site. When the page is not built, ``/`` says how to build it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.api.access import context
from app.api.responses import json_response
from app.settings import Settings

TUS_ENDPOINT = "/files/"


def page_headers(settings: Settings) -> dict[str, str]:
    provider = ""
    if settings.oidc_issuer:
        parts = urlsplit(settings.oidc_issuer)
        provider = f" {parts.scheme}://{parts.netloc}"
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' blob: data:; font-src 'self'; "
        f"connect-src 'self'{provider}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }


def keycloak_client(settings: Settings) -> dict[str, str] | None:
    """keycloak-js's configuration, from an issuer of Keycloak's form ``…/realms/NAME``."""
    base, found, realm = settings.oidc_issuer.rstrip("/").rpartition("/realms/")
    if not settings.oidc_issuer or not found or not realm:
        return None
    return {"url": base, "realm": realm, "client_id": settings.web_client_id}


async def config(request: Request) -> Response:
    settings = context(request).settings
    return json_response(
        {
            "auth": "oidc" if settings.oidc_issuer else "local",
            "oidc": keycloak_client(settings),
            "tus": {
                "endpoint": TUS_ENDPOINT,
                "chunk_size": settings.web_chunk_size,
                "parallel_uploads": settings.web_parallel_uploads,
            },
            "max_size": settings.max_size,
        }
    )


class PageFiles(StaticFiles):
    """The page's scripts, styles and images, with the page's headers."""

    def __init__(self, directory: Path, headers: dict[str, str]) -> None:
        super().__init__(directory=directory, check_dir=False)
        self.page_headers = headers

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(self.page_headers)
        return response


def routes(settings: Settings) -> list[Route | Mount]:
    directory = settings.effective_web_dir
    headers = page_headers(settings)

    async def index(request: Request) -> Response:
        page = directory / "index.html"
        if not page.is_file():
            return PlainTextResponse(
                "The web page is not built: run ./scripts/serve (or npm ci && npm run build in "
                "web/).\n",
                status_code=503,
            )
        return FileResponse(page, headers=headers)

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/api/config", config, methods=["GET"]),
        Mount("/assets", PageFiles(directory / "assets", headers)),
    ]
