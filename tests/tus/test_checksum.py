"""The checksum extension: a chunk is verified whole, or discarded whole."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from tests.gateways import Target
from tests.tus.client import create, offset, patch


def _digest(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha256", "sha512"])
def test_a_correct_checksum_is_accepted(
    target: Target, user: str, http: httpx.Client, algorithm: str
) -> None:
    url = create(http, target, user, 10)
    response = patch(
        http, target, user, url, 0, b"hello", Upload_Checksum=_digest(algorithm, b"hello")
    )
    assert response.status_code == 204
    assert response.headers["upload-offset"] == "5"


def test_a_mismatch_is_460_and_the_chunk_is_dropped(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = create(http, target, user, 2 * 1024 * 1024)
    assert patch(http, target, user, url, 0, b"a" * 1000).status_code == 204
    body = b"b" * (1024 * 1024)
    response = patch(http, target, user, url, 1000, body, Upload_Checksum=_digest("sha1", b"other"))
    assert response.status_code == 460
    assert "checksum mismatch" in response.text
    assert offset(http, target, user, url) == 1000
    good = patch(http, target, user, url, 1000, body, Upload_Checksum=_digest("sha1", body))
    assert good.status_code == 204


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("crc32 AAAAAA==", "unsupported checksum algorithm"),
        ("sha1", "Upload-Checksum"),
        ("sha1 not!base64", "base64"),
        ("sha1 AAAA", "digest length"),
    ],
)
def test_unusable_checksum_headers_are_400_and_store_nothing(
    target: Target, user: str, http: httpx.Client, header: str, reason: str
) -> None:
    url = create(http, target, user, 10)
    response = patch(http, target, user, url, 0, b"hello", Upload_Checksum=header)
    assert response.status_code == 400
    assert reason in response.text
    assert offset(http, target, user, url) == 0
