"""Range, If-None-Match and If-Range: the parsing alone, then the answers of real gateways."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from app.download.ranges import (
    Span,
    Unsatisfiable,
    none_match,
    range_applies,
    requested_span,
)
from tests.download.client import fetch, store
from tests.gateways import Target

SIZE = 1000
ETAG = '"abc"'
MODIFIED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        (None, SIZE, None),
        ("bytes=0-99", SIZE, Span(0, 100)),
        ("bytes=100-", SIZE, Span(100, SIZE)),
        ("bytes=-50", SIZE, Span(950, SIZE)),
        ("bytes=-5000", SIZE, Span(0, SIZE)),
        ("bytes=900-5000", SIZE, Span(900, SIZE)),
        ("bytes=999-999", SIZE, Span(999, SIZE)),
        ("Bytes = 5-9 ", SIZE, Span(5, 10)),
        ("bytes=0-5,10-20", SIZE, None),  # several ranges: the whole file
        ("bytes=9-3", SIZE, None),
        ("bytes=abc", SIZE, None),
        ("bytes=-", SIZE, None),
        ("bytes=٣-9", SIZE, None),  # not ASCII digits
        ("items=0-5", SIZE, None),
        ("0-5", SIZE, None),
        ("bytes=" + "9" * 31 + "-", SIZE, None),
        ("bytes=-5", 0, None),  # the last bytes of an empty file: all of it, which is nothing
    ],
)
def test_requested_span(header: str | None, size: int, span: Span | None) -> None:
    assert requested_span(header, size) == span


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=1000-", SIZE), ("bytes=5000-6000", SIZE), ("bytes=-0", SIZE)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        requested_span(header, size)


def test_unsatisfiable_on_an_empty_file() -> None:
    with pytest.raises(Unsatisfiable):
        requested_span("bytes=0-", 0)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ('"abc"', True),
        ('W/"abc"', True),  # weak comparison
        ("*", True),
        ('"x", "abc"', True),
        ('"x,y", W/"abc"', True),
        ('"abcd"', False),
        ("abc", False),
    ],
)
def test_none_match(header: str | None, matches: bool) -> None:
    assert none_match(header, ETAG) is matches


@pytest.mark.parametrize(
    ("header", "applies"),
    [
        (None, True),
        ('"abc"', True),
        ('W/"abc"', False),  # strong comparison: a weak tag never matches
        ('"other"', False),
        (format_datetime(MODIFIED, usegmt=True), True),
        (format_datetime(MODIFIED - timedelta(seconds=1), usegmt=True), False),
        ("yesterday", False),
    ],
)
def test_range_applies(header: str | None, applies: bool) -> None:
    assert range_applies(header, ETAG, MODIFIED) is applies


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, SIZE),
        ("bytes=-50", 950, SIZE),
        ("bytes=900-5000", 900, SIZE),
    ],
)
def test_a_single_range_is_206(
    target: Target, user: str, http: httpx.Client, header: str, start: int, stop: int
) -> None:
    body = os.urandom(SIZE)
    checksum = store(http, target, user, body)
    response = fetch(http, target, user, checksum, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == body[start:stop]
    assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert response.headers["content-length"] == str(stop - start)
    assert response.headers["etag"] == f'"{checksum}"'


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_past_the_end_is_416(
    target: Target, user: str, http: httpx.Client, header: str
) -> None:
    checksum = store(http, target, user, os.urandom(SIZE))
    response = fetch(http, target, user, checksum, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert response.json() == {"error": "range not satisfiable"}


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=0-5,10-20", "bytes=9-3", "lines=1-2"])
def test_a_malformed_or_multiple_range_gets_the_whole_file(
    target: Target, user: str, http: httpx.Client, header: str
) -> None:
    body = os.urandom(SIZE)
    checksum = store(http, target, user, body)
    response = fetch(http, target, user, checksum, headers={"Range": header})
    assert response.status_code == 200
    assert response.content == body
    assert "content-range" not in response.headers


def test_an_empty_file(target: Target, user: str, http: httpx.Client) -> None:
    checksum = store(http, target, user, b"")
    whole = fetch(http, target, user, checksum)
    assert (whole.status_code, whole.content, whole.headers["content-length"]) == (200, b"", "0")
    ranged = fetch(http, target, user, checksum, headers={"Range": "bytes=0-"})
    assert ranged.status_code == 416
    assert ranged.headers["content-range"] == "bytes */0"


def test_if_none_match_with_the_etag_is_304(target: Target, user: str, http: httpx.Client) -> None:
    checksum = store(http, target, user, os.urandom(SIZE))
    etag = fetch(http, target, user, checksum).headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = fetch(http, target, user, checksum, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert "last-modified" in response.headers
    other = fetch(http, target, user, checksum, headers={"If-None-Match": '"other"'})
    assert other.status_code == 200
    assert len(other.content) == SIZE


def test_if_range_honours_the_range_only_for_the_same_file(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = os.urandom(SIZE)
    checksum = store(http, target, user, body)
    first = fetch(http, target, user, checksum)
    for validator in (first.headers["etag"], first.headers["last-modified"]):
        headers = {"Range": "bytes=0-99", "If-Range": validator}
        response = fetch(http, target, user, checksum, headers=headers)
        assert response.status_code == 206, validator
        assert response.content == body[:100]
    earlier = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
    for validator in ('"another"', f"W/{first.headers['etag']}", earlier):
        headers = {"Range": "bytes=0-99", "If-Range": validator}
        response = fetch(http, target, user, checksum, headers=headers)
        assert response.status_code == 200, validator
        assert response.content == body
