"""``POST /api/files/availability``: which of up to 100 files can be downloaded now, and,
with ``"restore": true``, start restoring those that cannot.

REGARDS answers 410 for a file that needs a restore and has a separate call to start it; here
``GET /download/{sha256}`` starts the restore itself (202), and this endpoint asks about many
files at once, e.g. to show a list or to warm the cache before a batch of downloads. Files the
caller may not read are left out of the answer, exactly like unknown ones.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.access import context
from app.api.responses import iso, json_body, json_response
from app.db import downloads
from app.db.cache import CacheFull
from app.db.files import SHA256
from app.download import access
from app.files import restore

MAX_CHECKSUMS = 100


async def availability(request: Request) -> Response:
    ctx = context(request)
    reader = access.bearer_reader(request)
    checksums, wants_restore = _parse(
        await json_body(request, context(request).settings.patch_idle_timeout_seconds)
    )
    answers = []
    for sha256 in dict.fromkeys(checksums):  # each once, in the order asked
        try:
            view = await access.readable(ctx, sha256, reader)
        except HTTPException:
            continue
        copies = await downloads.copies(ctx.db, sha256)
        state = await restore.availability(ctx, sha256, copies)
        if wants_restore and state.state == restore.COLD:
            try:
                await restore.start(ctx, sha256, view.size, copies)
            except CacheFull as exc:
                answers.append(_answer(sha256, state, error=str(exc)))
                continue
            state = await restore.availability(ctx, sha256, copies)
        answers.append(_answer(sha256, state))
    return json_response({"files": answers})


def _answer(sha256: str, state: restore.Availability, error: str | None = None) -> dict[str, Any]:
    answer = {
        "sha256": sha256,
        "available": state.available,
        "state": state.state,
        "expires_at": iso(state.expires_at),
    }
    return answer if error is None else {**answer, "error": error}


def _parse(body: Any) -> tuple[list[str], bool]:
    if not isinstance(body, dict) or set(body) - {"checksums", "restore"}:
        raise HTTPException(400, 'body must be {"checksums": [...], "restore": false}')
    checksums = body.get("checksums")
    if not isinstance(checksums, list) or not checksums:
        raise HTTPException(400, "checksums must be a non-empty list")
    if len(checksums) > MAX_CHECKSUMS:
        raise HTTPException(400, f"at most {MAX_CHECKSUMS} checksums per request")
    if not all(isinstance(item, str) and SHA256.fullmatch(item) for item in checksums):
        raise HTTPException(400, "a checksum is 64 lower-case hexadecimal digits")
    wants_restore = body.get("restore", False)
    if not isinstance(wants_restore, bool):
        raise HTTPException(400, "restore must be true or false")
    return checksums, wants_restore


routes = [Route("/api/files/availability", availability, methods=["POST"])]
