"""Property-based fuzzing of the resumable-upload draft's field parsers: whatever a client
sends, a parser returns a value of its type or None (the draft: an invalid field is ignored as
a whole) — never an exception, which would be a 500. Valid values survive a round trip."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.resumable import fields

MANY = settings(max_examples=500, deadline=None)
header_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=300,
)


@MANY
@given(header_text)
@example("?1;a=b")
@example("٣")  # an Arabic-Indic digit: int() would take it
@example("-1")
@example("9" * 16)
def test_items_parse_to_their_type_or_are_ignored(value: str) -> None:
    flag = fields.boolean(value)
    number = fields.integer(value)
    assert flag is None or isinstance(flag, bool)
    assert number is None or 0 <= number < 10**15


def test_parameters_of_an_item_are_ignored() -> None:
    assert fields.boolean("?1;x") is True
    assert fields.integer("12;x=1") == 12


@MANY
@given(header_text)
@example("sha-256=:AAAA:")
@example("sha-256=:!!:, sha-512=x")
def test_digest_fields_parse_or_are_ignored(value: str) -> None:
    found = fields.digests(value)
    assert found is None or all(name in ("sha256", "sha512") for name in found)


@MANY
@given(st.binary(max_size=1000), st.sampled_from(["sha-256", "sha-512"]))
def test_valid_digests_round_trip(body: bytes, algorithm: str) -> None:
    name = fields.DIGEST_ALGORITHMS[algorithm]
    raw = hashlib.new(name, body).digest()
    unknown = f"md5=:{base64.b64encode(b'x' * 16).decode()}:"
    known = f"{algorithm}=:{base64.b64encode(raw).decode()}:"
    checksum = fields.content_checksum(f"{unknown}, {known}")
    assert checksum is not None
    assert (checksum.algorithm, checksum.digest) == (name, raw)


@MANY
@given(header_text)
@example("attachment; filename*=UTF-8''%FF%FE")
@example("inline; filename*=bogus-charset''abc")
@example('inline; filename="unclosed')
def test_content_disposition_names_a_file_or_nothing(value: str) -> None:
    name = fields.filename(value)
    assert name is None or isinstance(name, str)


@MANY
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=100))
def test_encoded_file_names_round_trip(name: str) -> None:
    value = f"inline; filename=\"fallback\"; filename*=UTF-8''{quote(name, safe='')}"
    assert fields.filename(value) == name
