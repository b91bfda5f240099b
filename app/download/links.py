"""``POST /api/files/{sha256}/link``: a signed download link, for a browser that cannot send a
bearer token.

The link is ``https://PUBLIC-HOST/download/{sha256}?token=…`` (the public URL when a trusted
proxy forwards it): a JWT from the local issuer, bound to the file and
to the caller, valid ``link_ttl_seconds``, and kept nowhere (the signature is the proof). It
grants no more than the caller's own right: an owner's link stops working once they no longer
own the file, since ownership is checked again at download time. The token is a credential
until it expires, so it is never logged; the audit trail records that a link was made.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.access import context
from app.api.responses import iso, json_response
from app.db import audit
from app.db.audit import Event
from app.download import access


async def create(request: Request) -> Response:
    ctx = context(request)
    sha256 = request.path_params["sha256"]
    reader = access.bearer_reader(request)
    view = await access.readable(ctx, sha256, reader)
    token, expires_at = ctx.issuer.issue_link(
        reader.id, sha256, ctx.settings.link_ttl_seconds, admin=not view.owned
    )
    await audit.record(
        ctx.db,
        Event(
            "file.linked",
            reader.id,
            owner=reader.id if view.owned else None,
            sha256=sha256,
            client=reader.address,
            detail={"expires_at": iso(expires_at)},
        ),
    )
    url = request.url_for("download", sha256=sha256).include_query_params(token=token)
    return json_response({"url": str(url), "expires_at": iso(expires_at)})


routes = [Route("/api/files/{sha256:str}/link", create, methods=["POST"])]
