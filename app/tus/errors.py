"""Every error the tus layer answers, in one table, and the one function that sends them.

Each error is a status and a one-line reason. Handlers raise ``TusError`` (often with a detail
appended via ``error.but(...)``); ``error_response`` turns it — and foreign errors from the
store or the lock backend — into a response. Anything unknown is logged and becomes a 500.
"""

from __future__ import annotations

import logging

from starlette.responses import Response

from app import db as database
from app import metrics
from app.locks.base import LockTimeout, LockUnavailable
from app.quota import patches
from app.quota.patches import TooManyPatches
from app.quota.storage import QuotaExceeded
from app.storage.errors import StorageError, StorageFull

TUS_VERSION = "1.0.0"
log = logging.getLogger("tusgate.tus")


class TusError(Exception):
    """A protocol error: a status and a one-line reason (and headers the spec requires)."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str] | None = None,
        problem: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.problem = problem  # its registered problem type (RFC 9457), where one exists

    def but(self, detail: str) -> TusError:
        """The same error with a more precise reason."""
        return TusError(self.status, f"{self.reason}: {detail}", self.headers, self.problem)


PROBLEM_TYPES = "https://iana.org/assignments/http-problem-types#"
MISMATCHING_OFFSET = PROBLEM_TYPES + "mismatching-upload-offset"
INCONSISTENT_LENGTH = PROBLEM_TYPES + "inconsistent-upload-length"


UNSUPPORTED_VERSION = TusError(412, "unsupported version", {"Tus-Version": TUS_VERSION})
INVALID_OFFSET = TusError(400, "Upload-Offset must be a non-negative integer")
INVALID_LENGTH = TusError(400, "Upload-Length must be a non-negative integer")
MISSING_LENGTH = TusError(400, "Upload-Length or Upload-Defer-Length: 1 is required")
INVALID_DEFER_LENGTH = TusError(400, "Upload-Defer-Length must be 1, without Upload-Length")
LENGTH_ALREADY_SET = TusError(
    400, "Upload-Length is already set and cannot change", problem=INCONSISTENT_LENGTH
)
LENGTH_BELOW_OFFSET = TusError(
    400, "Upload-Length is smaller than the bytes already received", problem=INCONSISTENT_LENGTH
)
LENGTH_DISAGREES = TusError(
    400, "the upload's length and the body that completes it disagree", problem=INCONSISTENT_LENGTH
)
TOO_SMALL = TusError(400, "Upload-Length is below the minimum size")
TOO_LARGE = TusError(413, "Upload-Length exceeds Tus-Max-Size")
BODY_TOO_LARGE = TusError(413, "body runs past the upload's length")
INVALID_METADATA = TusError(400, "Upload-Metadata is malformed")
INVALID_CHECKSUM = TusError(400, "Upload-Checksum must be '<algorithm> <base64 digest>'")
UNSUPPORTED_CHECKSUM = TusError(400, "unsupported checksum algorithm")
CHECKSUM_MISMATCH = TusError(460, "checksum mismatch")
DIGEST_MISMATCH = TusError(
    400, "the upload's SHA-256 differs from the digest announced for it; it was discarded"
)
INCOMPLETE_CHECKED_BODY = TusError(
    460, "body ended early; a checksummed chunk is kept whole or not"
)
INVALID_CONCAT = TusError(400, "Upload-Concat must be 'partial' or 'final;<url> <url> ...'")
PARTIAL_NOT_FOUND = TusError(400, "a partial upload named in Upload-Concat does not exist")
INVALID_CONTENT_TYPE = TusError(415, "Content-Type must be application/offset+octet-stream")
INVALID_CONTENT_LENGTH = TusError(400, "Content-Length must be a non-negative integer")
OFFSET_MISMATCH = TusError(
    409, "Upload-Offset does not match the upload's offset", problem=MISMATCHING_OFFSET
)
PATCH_FINAL = TusError(403, "a final upload is assembled from its partial uploads: no PATCH")
NOT_FOUND = TusError(404, "upload not found")
EXPIRED = TusError(410, "upload expired")
TERMINATED = TusError(410, "upload terminated")
LOCKED = TusError(423, "upload is being written by another request; retry shortly")
STORE_UNAVAILABLE = TusError(503, "storage unavailable; retry later", {"Retry-After": "5"})
LOCKS_UNAVAILABLE = TusError(503, "lock service unavailable; retry later", {"Retry-After": "5"})
STORE_FULL = TusError(507, "storage full: nothing of this request was stored; retry later")
DATABASE_UNAVAILABLE = TusError(503, "database unavailable; retry later", {"Retry-After": "5"})
DATABASE_FULL = TusError(507, "database full: this request was not recorded; retry later")
SHUTTING_DOWN = TusError(
    503, "this instance is shutting down; retry (another one answers)", {"Retry-After": "1"}
)

# The IETF draft's own (app/resumable): same uploads, other fields.
MISSING_COMPLETE = TusError(400, "Upload-Complete must be ?0 or ?1")
MISSING_DRAFT_OFFSET = TusError(400, "Upload-Offset must be a non-negative integer")
INVALID_PARTIAL_TYPE = TusError(415, "Content-Type must be application/partial-upload")
UNSUPPORTED_INTEROP = TusError(400, "unsupported Upload-Draft-Interop-Version")


def to_tus_error(exc: Exception) -> TusError | None:
    """Foreign errors that have a meaning for the client; None for anything unexpected."""
    if isinstance(exc, TusError):
        return exc
    if isinstance(exc, QuotaExceeded):
        metrics.QUOTA_REJECTIONS.labels("storage").inc()
        return TusError(403, str(exc))
    if isinstance(exc, TooManyPatches):
        metrics.QUOTA_REJECTIONS.labels("patches").inc()
        return TusError(429, str(exc), {"Retry-After": str(patches.RETRY_AFTER_SECONDS)})
    if isinstance(exc, LockTimeout):
        return LOCKED
    if isinstance(exc, LockUnavailable):
        return LOCKS_UNAVAILABLE
    if isinstance(exc, StorageFull):
        return STORE_FULL
    if isinstance(exc, StorageError):
        return STORE_UNAVAILABLE
    if database.full(exc):
        return DATABASE_FULL
    if database.unreachable(exc):
        return DATABASE_UNAVAILABLE
    return None


def as_error(exc: Exception) -> TusError:
    """The error to answer for ``exc``: its meaning for the client, or a logged 500."""
    error = to_tus_error(exc)
    if error is None:
        log.exception("unexpected error", exc_info=exc)
        return TusError(500, "internal error")
    return error


def error_response(exc: Exception, method: str) -> Response:
    error = as_error(exc)
    metrics.UPLOADS_FAILED.labels(method, str(error.status)).inc()
    headers = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **error.headers}
    body = b"" if method == "HEAD" else error.reason.encode() + b"\n"
    return Response(body, status_code=error.status, headers=headers, media_type="text/plain")
