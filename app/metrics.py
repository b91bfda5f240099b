"""The gateway's Prometheus metrics (``GET /metrics``), per instance.

Counters of what happened to uploads and files follow the audit trail: ``observe`` maps each
recorded action to its counter, so every place that records an action counts it too. Request
durations and bytes come from the request log middleware, store and lock timings from the code
that waits for them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

# From a HEAD of a few milliseconds to a PATCH of 8 MiB over a slow link.
DURATIONS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

UPLOADS_CREATED = Counter("tusgate_uploads_created", "Uploads created")
UPLOADS_COMPLETED = Counter("tusgate_uploads_completed", "Uploads that received their last byte")
UPLOADS_EXPIRED = Counter("tusgate_uploads_expired", "Unfinished uploads expired")
UPLOADS_TERMINATED = Counter("tusgate_uploads_terminated", "Uploads terminated by clients")
UPLOADS_FAILED = Counter(
    "tusgate_upload_failures", "tus requests answered with an error", ["method", "status"]
)
FILES_DELETED = Counter("tusgate_files_deleted", "Ownerships removed by their owners")
FILES_EXPIRED = Counter("tusgate_files_expired", "Ownerships past their retention")
PATCHES_IN_PROGRESS = Gauge(
    "tusgate_uploads_in_progress", "PATCH requests receiving bytes on this instance"
)
BYTES_RECEIVED = Counter("tusgate_received_bytes", "Request body bytes received")
BYTES_SENT = Counter("tusgate_sent_bytes", "Response body bytes sent")
REQUEST_DURATION = Histogram(
    "tusgate_request_duration_seconds",
    "Time from a request's arrival to the end of its answer",
    ["method", "route", "status"],
    buckets=DURATIONS,
)
STORE_DURATION = Histogram(
    "tusgate_store_operation_seconds",
    "Time spent in store operations",
    ["location", "operation"],
    buckets=DURATIONS,
)
LOCK_WAIT = Histogram("tusgate_lock_wait_seconds", "Time a request waited for an upload's lock")
QUOTA_REJECTIONS = Counter("tusgate_quota_rejections", "Requests refused by a quota", ["quota"])
RESTORES_STARTED = Counter("tusgate_restores_started", "Restores into the cache started")
RESTORES_FINISHED = Counter(
    "tusgate_restores_finished", "Restores into the cache ended", ["outcome"]
)
EVENTS_PUBLISHED = Counter("tusgate_events_published", "Events appended to the Redis stream")

_BY_ACTION = {
    "upload.created": UPLOADS_CREATED,
    "upload.completed": UPLOADS_COMPLETED,
    "upload.expired": UPLOADS_EXPIRED,
    "upload.terminated": UPLOADS_TERMINATED,
    "file.deleted": FILES_DELETED,
    "file.expired": FILES_EXPIRED,
}


def observe(action: str) -> None:
    """Count an action of the audit trail."""
    counter = _BY_ACTION.get(action)
    if counter is not None:
        counter.inc()


@contextmanager
def timed(histogram: Histogram, *labels: str) -> Iterator[None]:
    """Observe how long the block took (also when it fails)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        target = histogram.labels(*labels) if labels else histogram
        target.observe(time.perf_counter() - started)
