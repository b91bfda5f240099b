"""Parsing and formatting of the tus request and response headers.

Parsers are strict: anything that is not exactly what the spec allows raises the matching
``TusError`` with a reason, so a malformed header never reaches the life cycle.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from app.tus import errors
from app.tus.checksum import ALGORITHMS

_DIGITS = re.compile(r"[0-9]{1,19}")
_METADATA_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable ASCII but space and comma
_UPLOAD_PATH = re.compile(r"/files/([A-Za-z0-9_-]+)/?$")
METADATA_MAX = 8 * 1024

Metadata = list[tuple[str, str | None]]


def parse_int(value: str | None, error: errors.TusError) -> int | None:
    """A non-negative decimal integer, or None when the header is absent."""
    if value is None:
        return None
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        raise error
    return int(value)


def parse_metadata(value: str | None) -> Metadata:
    """Upload-Metadata as pairs of key and base64 value, kept as sent (values validated)."""
    if value is None or not value.strip():
        return []
    if len(value) > METADATA_MAX:
        raise errors.INVALID_METADATA.but(f"longer than {METADATA_MAX} bytes")
    pairs: Metadata = []
    seen: set[str] = set()
    for item in value.split(","):
        parts = item.strip().split(" ")
        if len(parts) > 2 or not _METADATA_KEY.fullmatch(parts[0]):
            raise errors.INVALID_METADATA.but(f"bad pair {item.strip()[:40]!r}")
        key = parts[0]
        if key in seen:
            raise errors.INVALID_METADATA.but(f"duplicate key {key!r}")
        seen.add(key)
        encoded = parts[1] if len(parts) == 2 else None
        if encoded is not None:
            try:
                base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):  # ValueError: characters beyond ASCII
                raise errors.INVALID_METADATA.but(f"value of {key!r} is not base64") from None
        pairs.append((key, encoded))
    return pairs


def metadata_text(pairs: Metadata, *keys: str) -> str | None:
    """The first of ``keys`` present, decoded as UTF-8: undecodable bytes are replaced, and so
    is NUL, which no PostgreSQL text can hold."""
    values = dict(pairs)
    for key in keys:
        encoded = values.get(key)
        if encoded:
            text = base64.b64decode(encoded).decode("utf-8", errors="replace")
            return text.replace("\x00", "\ufffd")
    return None


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


def parse_checksum(value: str | None) -> Checksum | None:
    if value is None:
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2:
        raise errors.INVALID_CHECKSUM
    algorithm, encoded = parts[0].lower(), parts[1]
    if algorithm not in ALGORITHMS:
        raise errors.UNSUPPORTED_CHECKSUM.but(f"{algorithm!r}; supported: {' '.join(ALGORITHMS)}")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):  # ValueError: characters beyond ASCII
        raise errors.INVALID_CHECKSUM.but("digest is not base64") from None
    if len(digest) != ALGORITHMS[algorithm]().digest_size:
        raise errors.INVALID_CHECKSUM.but(f"wrong digest length for {algorithm}")
    return Checksum(algorithm, digest)


@dataclass(frozen=True)
class Concat:
    kind: str  # "partial" or "final"
    partial_ids: tuple[str, ...] = ()


def parse_concat(value: str | None) -> Concat | None:
    if value is None:
        return None
    value = value.strip()
    if value == "partial":
        return Concat("partial")
    if not value.startswith("final;"):
        raise errors.INVALID_CONCAT
    ids: list[str] = []
    for url in value[len("final;") :].split():
        try:
            match = _UPLOAD_PATH.search(urlsplit(url).path)
        except ValueError:  # urlsplit refuses some malformed URLs (an unclosed "[")
            match = None
        if match is None:
            raise errors.INVALID_CONCAT.but(f"not an upload URL: {url[:80]!r}")
        ids.append(match.group(1))
    if not ids:
        raise errors.INVALID_CONCAT.but("no partial uploads named")
    if len(set(ids)) != len(ids):
        raise errors.INVALID_CONCAT.but("a partial upload is named twice")
    return Concat("final", tuple(ids))


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)
