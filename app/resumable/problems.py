"""Errors of the resumable-upload draft as problem details (RFC 9457).

The errors themselves are the upload layer's (``app/tus/errors.py``, one table for both
protocols); this only formats them the draft's way: ``application/problem+json`` with the
registered problem types, ``Upload-Complete`` saying whether the upload is over, and the offset
the client must resume from after a mismatch.
"""

from __future__ import annotations

import json

from starlette.responses import Response

from app import metrics
from app.tus import errors
from app.tus.errors import MISMATCHING_OFFSET, TusError


def as_problem(exc: Exception) -> TusError:
    error = errors.as_error(exc)
    if error.status == 460:  # tus's own code: the draft has none for a content digest mismatch
        return TusError(400, error.reason, error.headers, error.problem)
    return error


def response(
    error: TusError,
    method: str,
    *,
    offset: int | None = None,
    provided_offset: int | None = None,
    completed: bool = False,
    extra: dict[str, str] | None = None,
) -> Response:
    """``completed``: the whole representation arrived and it is its processing that failed."""
    metrics.UPLOADS_FAILED.labels(method, str(error.status)).inc()
    problem: dict[str, object] = {
        "type": error.problem or "about:blank",
        "title": error.reason,
        "status": error.status,
    }
    headers = {
        "Cache-Control": "no-store",
        "Upload-Complete": "?1" if completed else "?0",
        **error.headers,
        **(extra or {}),
    }
    if error.problem == MISMATCHING_OFFSET and offset is not None:
        headers["Upload-Offset"] = str(offset)
        problem["expected-offset"] = offset
        problem["provided-offset"] = provided_offset
    body = b"" if method == "HEAD" else json.dumps(problem).encode() + b"\n"
    return Response(
        body, status_code=error.status, headers=headers, media_type="application/problem+json"
    )
