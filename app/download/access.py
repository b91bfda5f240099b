"""Who reads a file, and whether they may.

A reader comes with a bearer token (the middleware verified it) or with a download link (a
``token`` query parameter, verified here against the file it must name). Either way the right
is checked against the catalogue at the moment of reading: an owner of the file, or an
administrator. Everyone else gets the 404 of a file that does not exist, so the answer never
tells whether a checksum is stored. A bad link is refused with 403 before the catalogue is
asked, for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.api.access import context
from app.auth.errors import InvalidToken
from app.auth.middleware import link_token
from app.auth.principal import of_request
from app.context import Context
from app.db import downloads
from app.db.downloads import FileView
from app.db.files import SHA256


@dataclass(frozen=True)
class Reader:
    id: str
    admin: bool  # may read any file
    address: str | None  # for the audit trail
    link: bool  # came with a download link rather than a bearer token


def bearer_reader(request: Request) -> Reader:
    principal = of_request(request.scope)
    admin = principal.has_role(context(request).settings.admin_role)
    return Reader(principal.id, admin, principal.address, link=False)


def reader(request: Request) -> Reader:
    """The reader of a download request, by its link if it has one."""
    token = link_token(request.scope)
    if token is None:
        return bearer_reader(request)
    try:
        link = context(request).issuer.verify_link(token, request.path_params["sha256"])
    except InvalidToken as exc:
        raise HTTPException(403, f"invalid download link: {exc}") from None
    address = request.client.host if request.client else None
    return Reader(link.user, link.admin, address, link=True)


async def readable(ctx: Context, sha256: str, reader: Reader) -> FileView:
    """The file as ``reader`` sees it, if they may read it; else 404."""
    if SHA256.fullmatch(sha256):
        view = await downloads.view(ctx.db, sha256, reader.id)
        if view is not None and (view.owned or reader.admin):
            return view
    raise HTTPException(404, "file not found")
