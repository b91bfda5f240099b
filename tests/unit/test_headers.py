"""The header parsers, table by table: what the spec allows passes, anything else is a 4xx."""

from __future__ import annotations

import base64
import hashlib

import pytest

from app.tus import errors
from app.tus.headers import (
    metadata_text,
    parse_checksum,
    parse_concat,
    parse_int,
    parse_metadata,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("0", 0), ("42", 42), (" 7 ", 7), ("9" * 19, int("9" * 19))],
)
def test_integers(value: str | None, expected: int | None) -> None:
    assert parse_int(value, errors.INVALID_OFFSET) == expected


@pytest.mark.parametrize("value", ["", "-1", "+1", "1.0", "1e3", "0x10", "1 2", "9" * 20, "٣"])
def test_non_integers_raise_the_given_error(value: str) -> None:
    with pytest.raises(errors.TusError) as caught:
        parse_int(value, errors.INVALID_OFFSET)
    assert caught.value is errors.INVALID_OFFSET


def test_metadata_pairs() -> None:
    pairs = parse_metadata("filename bmHDr3ZlLnR4dA==,is_confidential, empty ,raw //4=")
    assert pairs == [
        ("filename", "bmHDr3ZlLnR4dA=="),
        ("is_confidential", None),
        ("empty", None),
        ("raw", "//4="),
    ]
    assert metadata_text(pairs, "name", "filename") == "naïve.txt"
    assert metadata_text(pairs, "raw") == "\ufffd\ufffd"  # undecodable bytes, replaced


@pytest.mark.parametrize(
    "header",
    ["a b c", "ké YQ==", "k YQ==,k YQ==", "k not-base64!", "k YQ", " , ", "x" * 9000],
)
def test_malformed_metadata(header: str) -> None:
    with pytest.raises(errors.TusError) as caught:
        parse_metadata(header)
    assert caught.value.status == 400


def test_checksums() -> None:
    digest = hashlib.sha1(b"x").digest()
    parsed = parse_checksum(f"SHA1 {base64.b64encode(digest).decode()}")
    assert parsed is not None
    assert (parsed.algorithm, parsed.digest) == ("sha1", digest)
    assert parse_checksum(None) is None


@pytest.mark.parametrize(
    ("header", "status"),
    [("crc32 AAAA", 400), ("sha1", 400), ("sha1 a b", 400), ("md5 ****", 400), ("md5 AAAA", 400)],
)
def test_bad_checksums(header: str, status: int) -> None:
    with pytest.raises(errors.TusError) as caught:
        parse_checksum(header)
    assert caught.value.status == status


def test_concat() -> None:
    assert parse_concat(None) is None
    assert parse_concat("partial") == parse_concat(" partial ")
    final = parse_concat("final;http://h/files/abc /files/def https://x/y/files/g_h-1")
    assert final is not None
    assert final.kind == "final"
    assert final.partial_ids == ("abc", "def", "g_h-1")


@pytest.mark.parametrize(
    "header",
    [
        "partia",
        "final;",
        "final",
        "final;/files/a /files/a",
        "final;/elsewhere/a",
        "final;/files/../x",
    ],
)
def test_bad_concat(header: str) -> None:
    with pytest.raises(errors.TusError) as caught:
        parse_concat(header)
    assert caught.value.status == 400
