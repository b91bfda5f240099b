"""Property-based fuzzing of the header parsers: whatever a client sends, each parser either
returns a well-formed value or raises its ``TusError`` (a 4xx with a reason) — never anything
else, which would be a 500. Valid values survive a round trip."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import unquote

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.download.headers import MAX_NAME_BYTES, attachment
from app.download.ranges import Unsatisfiable, requested_span
from app.tus import errors
from app.tus.checksum import ALGORITHMS
from app.tus.headers import (
    metadata_text,
    parse_checksum,
    parse_concat,
    parse_int,
    parse_metadata,
)

T = TypeVar("T")


def _outcome(call: Callable[[], T]) -> tuple[T | None, errors.TusError | None]:
    """What a parser returned, or the TusError it raised; any other exception propagates."""
    try:
        return call(), None
    except errors.TusError as refusal:
        return None, refusal


MANY = settings(max_examples=500, deadline=None)
# What a header value can hold once an HTTP parser has accepted it: no CR, LF or NUL.
header_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=300,
)
metadata_keys = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=","),
    min_size=1,
    max_size=20,
)


@MANY
@given(header_text)
@example("12\n")
@example("9" * 20)
@example("٣")  # an Arabic-Indic digit: int() would take it
def test_integers_are_plain_decimal_digits(value: str) -> None:
    parsed, refusal = _outcome(lambda: parse_int(value, errors.INVALID_OFFSET))
    if refusal is not None:
        assert refusal is errors.INVALID_OFFSET
        return
    assert parsed is not None
    assert 0 <= parsed < 10**19
    assert str(parsed) == value.strip().lstrip("0") or parsed == 0


@MANY
@given(header_text)
@example("key\n YQ==")
@example("name \x80")  # obs-text: an HTTP parser lets it through
@example("a YQ==,a YQ==")
def test_metadata_parses_or_is_refused(value: str) -> None:
    pairs, refusal = _outcome(lambda: parse_metadata(value))
    if refusal is not None:
        assert refusal.status == 400
        return
    assert pairs is not None
    keys = [key for key, _ in pairs]
    assert len(set(keys)) == len(keys)
    for key, encoded in pairs:
        assert re.fullmatch(r"[\x21-\x2b\x2d-\x7e]+", key)
        if encoded is not None:
            base64.b64decode(encoded, validate=True)


@MANY
@given(st.dictionaries(metadata_keys, st.one_of(st.none(), st.binary(max_size=200)), max_size=8))
def test_valid_metadata_round_trips(values: dict[str, bytes | None]) -> None:
    header = ",".join(
        key if value is None else f"{key} {base64.b64encode(value).decode()}"
        for key, value in values.items()
    )
    pairs = dict(parse_metadata(header))
    assert set(pairs) == set(values)
    for key, value in values.items():
        if value:
            decoded = value.decode("utf-8", "replace").replace("\x00", "\ufffd")
            assert metadata_text(list(pairs.items()), key) == decoded


@MANY
@given(header_text)
@example("sha1 \xff")
def test_checksums_parse_or_are_refused(value: str) -> None:
    checksum, refusal = _outcome(lambda: parse_checksum(value))
    if refusal is not None:
        assert refusal.status == 400
        return
    assert checksum is not None
    assert len(checksum.digest) == ALGORITHMS[checksum.algorithm]().digest_size


@MANY
@given(st.sampled_from(sorted(ALGORITHMS)), st.binary(min_size=1, max_size=1000))
def test_valid_checksums_round_trip(algorithm: str, body: bytes) -> None:
    digest = ALGORITHMS[algorithm](body).digest()
    checksum = parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}")
    assert checksum is not None
    assert (checksum.algorithm, checksum.digest) == (algorithm, digest)


@MANY
@given(header_text.map(lambda text: "final;" + text))
@example("final;http://[::1/files/abc")  # urlsplit raises ValueError on this
@example("final;/files/a /files/a")
def test_concat_parses_or_is_refused(value: str) -> None:
    concat, refusal = _outcome(lambda: parse_concat(value))
    if refusal is not None:
        assert refusal.status == 400
        return
    assert concat is not None
    assert concat.partial_ids
    assert len(set(concat.partial_ids)) == len(concat.partial_ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", upload_id) for upload_id in concat.partial_ids)


@MANY
@given(header_text, st.integers(min_value=0, max_value=2**40))
@example("bytes=0-", 0)
@example("bytes=-0", 10)
@example("bytes=5-2", 10)
def test_ranges_land_inside_the_file(header: str, size: int) -> None:
    try:
        span = requested_span(header, size)
    except Unsatisfiable:
        return
    if span is not None:
        assert 0 <= span.start < span.stop <= size


@MANY
@given(st.text(max_size=3000))
@example("../../etc/passwd")
@example("\u00e9" * 3000 + ".txt")
@example('a"b\\c%2F\r\nSet-Cookie: x')
@example("\u202egnp.exe")
def test_download_names_are_safe_headers_that_decode_to_the_name(name: str) -> None:
    value = attachment(name, default="fallback")
    value.encode("latin-1")  # a header value, representable as is
    # Bounded whatever the name's length: 255 bytes, percent-encoded, plus the fallback.
    assert len(value) <= 50 + 4 * MAX_NAME_BYTES
    match = re.fullmatch(
        r'attachment; filename="(?P<fallback>[\x20\x21\x23-\x5b\x5d-\x7e]*)"; '
        r"filename\*=UTF-8''(?P<encoded>(?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})*)",
        value,
    )
    assert match is not None, value
    assert "/" not in match["fallback"]
    assert "\\" not in match["fallback"]
    exact = unquote(match["encoded"], errors="strict")
    assert exact.strip() == exact
    assert "\r" not in exact
    assert "\n" not in exact
