"""The headers that describe a download, whatever part of it is sent.

Names and types come from uploaders, so they are treated as hostile: a type that is not a plain
``type/subtype`` becomes ``application/octet-stream``, the file is always an attachment (never
shown inline) with ``nosniff``, and the name is encoded per RFC 6266 / RFC 5987 — an ASCII
fallback ``filename="…"`` with nothing in it that could end the quoted string or confuse a
browser, plus the exact name as ``filename*=UTF-8''…``. A name longer than any file system takes
is shortened (its extension kept), so the header stays small whatever was uploaded.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote

from app.db.downloads import FileView

OCTET_STREAM = "application/octet-stream"
# RFC 5987 attr-char beyond letters and digits: what filename* may carry unencoded.
_ATTR_CHARS = "!#$&+-.^_`|~"
# type/subtype (RFC 6838 restricted names), optionally with parameters of visible ASCII.
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
    r"(?:\s*;[\x20-\x7e]*)?",
    re.ASCII,
)
# Unsafe in the quoted fallback: quotes and backslashes end or escape it, "%" is decoded by
# some browsers, and "/" or "\" would name a directory.
_UNSAFE_FALLBACK = re.compile(r'[^\x20-\x7e]|["\\%/]')
# The longest name sent, in UTF-8 bytes: what file systems take (ext4, NTFS, APFS). Metadata
# allows names of several KiB; percent-encoded, one made a response head of ~20 KiB, which
# nginx refuses with a 502 (a head must fit its proxy_buffer_size, 4 KiB by default).
MAX_NAME_BYTES = 255
MAX_EXTENSION_BYTES = 16  # a longer "extension" is just part of the name


def representation(view: FileView) -> dict[str, str]:
    """Headers of every answer carrying the file (200, 206, HEAD)."""
    return {
        **validators(view),
        "Accept-Ranges": "bytes",
        "Content-Type": media_type(view.content_type),
        "Content-Disposition": attachment(view.name, default=view.sha256),
        "X-Content-Type-Options": "nosniff",
    }


def validators(view: FileView) -> dict[str, str]:
    """Headers of a 304 too: what lets a client keep and revalidate its copy.

    ``private, no-cache``: a browser may keep the file but must ask again before reusing it, so
    a reader who lost the right to it stops getting it; shared caches never keep it.
    """
    return {
        "ETag": etag(view.sha256),
        "Last-Modified": format_datetime(last_modified(view), usegmt=True),
        "Cache-Control": "private, no-cache",
    }


def etag(sha256: str) -> str:
    return f'"{sha256}"'


def last_modified(view: FileView) -> datetime:
    """When the bytes were first stored, to the second as HTTP dates go."""
    return view.created_at.replace(microsecond=0)


def media_type(value: str | None) -> str:
    if value is None or _MEDIA_TYPE.fullmatch(value.strip()) is None:
        return OCTET_STREAM
    return value.strip()


def attachment(name: str | None, *, default: str) -> str:
    """``Content-Disposition: attachment`` naming the file ``name`` (or ``default``)."""
    # Control and format characters (CR, LF, right-to-left overrides...) leave the name.
    visible = "".join(ch for ch in name or "" if unicodedata.category(ch)[0] != "C").strip()
    visible = _shortened(visible or default)
    return (
        f'attachment; filename="{_shortened(_ascii_fallback(visible))}"; '
        f"filename*=UTF-8''{quote(visible, safe=_ATTR_CHARS)}"
    )


def _shortened(name: str) -> str:
    """``name`` cut to ``MAX_NAME_BYTES`` of UTF-8 on a character boundary, extension kept."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = dot + extension if stem and len(extension.encode()) < MAX_EXTENSION_BYTES else ""
    kept = (stem if suffix else name).encode()[: MAX_NAME_BYTES - len(suffix.encode())]
    return kept.decode(errors="ignore").rstrip() + suffix


def _ascii_fallback(name: str) -> str:
    """The name in plain ASCII for old browsers: accents dropped, anything unsafe as "_"."""
    decomposed = unicodedata.normalize("NFKD", name)
    unaccented = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _UNSAFE_FALLBACK.sub("_", unaccented)
