"""The draft's header fields: Structured Field items (RFC 9651) and Digest Fields (RFC 9530).

The draft says a field whose value is not of its type "MUST cause the entire header field to be
ignored": parsers here return None for such a value, exactly as for an absent field, and the
handler decides whether the request can do without it.
"""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message
from email.utils import collapse_rfc2231_value

from app.tus.checksum import ALGORITHMS
from app.tus.headers import Checksum

INTEROP_VERSION = 8
_INTEGER = re.compile(r"[0-9]{1,15}")  # the draft's values are non-negative sf-integers
# Digest Fields algorithm names (RFC 9530's registry) → our hash names
DIGEST_ALGORITHMS = {"sha-256": "sha256", "sha-512": "sha512"}


def _bare_item(value: str | None) -> str | None:
    """The item without its parameters (``?1;foo=bar`` → ``?1``): parameters carry nothing here."""
    if value is None:
        return None
    return value.split(";", 1)[0].strip()


def boolean(value: str | None) -> bool | None:
    item = _bare_item(value)
    return {"?1": True, "?0": False}.get(item) if item is not None else None


def integer(value: str | None) -> int | None:
    item = _bare_item(value)
    return int(item) if item is not None and _INTEGER.fullmatch(item) else None


def digests(value: str | None) -> dict[str, bytes] | None:
    """A Content-Digest or Repr-Digest dictionary: algorithm → digest, for the ones we know.

    Unknown algorithms are skipped (RFC 9530 lets a recipient ignore them); a known one with a
    malformed or wrongly sized digest makes the whole field invalid.
    """
    if value is None:
        return None
    found: dict[str, bytes] = {}
    for member in value.split(","):
        key, _, item = member.strip().partition("=")
        name = DIGEST_ALGORITHMS.get(key.strip())
        if name is None:
            continue
        item = _bare_item(item) or ""
        if len(item) < 2 or item[0] != ":" or item[-1] != ":":
            return None
        try:
            digest = base64.b64decode(item[1:-1], validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(digest) != ALGORITHMS[name]().digest_size:
            return None
        found[name] = digest
    return found


def content_checksum(value: str | None) -> Checksum | None:
    """The Content-Digest to verify a request's content against: the strongest one we know."""
    known = digests(value) or {}
    for name in ("sha512", "sha256"):
        if name in known:
            return Checksum(name, known[name])
    return None


def repr_digest(sha256_hex: str) -> str:
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


def filename(content_disposition: str | None) -> str | None:
    """The file name of a Content-Disposition field (``filename*`` per RFC 6266 preferred)."""
    if not content_disposition:
        return None
    message = Message()
    message["Content-Disposition"] = content_disposition
    try:
        params = message.get_params(header="content-disposition") or []
        names = [value for key, value in params if key.lower() == "filename"]
        # filename* arrives decoded into a (charset, language, text) tuple: it wins
        names.sort(key=lambda value: not isinstance(value, tuple))
        name = collapse_rfc2231_value(names[0]) if names else None
    except (ValueError, LookupError):  # a malformed field names nothing
        return None
    return name or None


def limits(**values: int | None) -> str:
    """An Upload-Limit dictionary; names use underscores for dashes (max_size=...)."""
    return ", ".join(
        f"{key.replace('_', '-')}={value}" for key, value in values.items() if value is not None
    )
