"""Range and conditional requests (RFC 9110 §13, §14), as pure functions of header values.

One byte range is served as 206. Anything else in a ``Range`` header — several ranges, another
unit, a value that does not parse — is ignored and the whole file goes out as 200, which RFC
9110 allows (a server may always ignore ``Range``) and which every client handles. A single
range that starts past the end cannot be served at all: 416.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# first-last, first- or -suffix; 30 digits is past any file size and keeps int() cheap.
_SPEC = re.compile(r"(?P<first>[0-9]{0,30})-(?P<last>[0-9]{0,30})", re.ASCII)
_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')


@dataclass(frozen=True)
class Span:
    """Bytes ``[start, stop)`` of a file."""

    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{size}"


class Unsatisfiable(Exception):
    """The range asked for holds no byte of the file: 416."""


def requested_span(header: str | None, size: int) -> Span | None:
    """The single range a ``Range`` header asks for, clipped to the file; None for the whole."""
    if header is None:
        return None
    unit, equals, ranges = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    match = _SPEC.fullmatch(ranges.strip())
    if match is None:
        return None  # several ranges, or not a range at all
    first, last = match["first"], match["last"]
    if not first:
        return _suffix(last, size)
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored like any other
    if start >= size:
        raise Unsatisfiable
    return Span(start, min(int(last) + 1, size) if last else size)


def _suffix(last: str, size: int) -> Span | None:
    """``-N``: the last N bytes (the whole file when it is shorter)."""
    if not last:
        return None  # "-" alone
    suffix = int(last)
    if suffix == 0:
        raise Unsatisfiable
    if size == 0:
        return None  # the last bytes of nothing: the (empty) whole
    return Span(max(0, size - suffix), size)


def none_match(header: str | None, etag: str) -> bool:
    """``If-None-Match`` names the file's entity tag (weak comparison) or is ``*``."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.removeprefix("W/") == etag for tag in _ENTITY_TAG.findall(header))


def range_applies(if_range: str | None, etag: str, last_modified: datetime) -> bool:
    """Whether ``Range`` may be honoured under ``If-Range``: it names the file's entity tag
    (strong comparison, so never a weak tag) or exactly its modification date."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment == last_modified
