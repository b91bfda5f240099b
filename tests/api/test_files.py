"""DELETE /api/files/{sha256}: a caller stops owning a file; its bytes go with the last owner,
unless the location forbids physical deletion."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.download.client import audit, fetch, store
from tests.gateways import StartTarget, Target, new_user
from tests.tus.client import my_files, sha256, upload


def _delete(http: httpx.Client, target: Target, user: str, checksum: str) -> httpx.Response:
    return http.delete(f"{target.url}/api/files/{checksum}", headers=target.headers(user))


def test_an_owner_deletes_their_file(target: Target, user: str, http: httpx.Client) -> None:
    checksum = store(http, target, user, os.urandom(100))
    response = _delete(http, target, user, checksum)
    assert response.status_code == 204
    assert my_files(http, target, user) == []
    assert fetch(http, target, user, checksum).status_code == 404
    assert _delete(http, target, user, checksum).status_code == 404
    [event] = audit(http, target, sha256=checksum, action="file.deleted")
    assert (event["actor"], event["owner"]) == (user, user)


@pytest.mark.parametrize("checksum", ["f" * 64, "not-a-checksum", "F" * 64])
def test_unknown_or_malformed_files_are_404(
    target: Target, user: str, http: httpx.Client, checksum: str
) -> None:
    response = _delete(http, target, user, checksum)
    assert response.status_code == 404
    assert response.json() == {"error": "file not found"}


def test_only_an_owner_may_delete(target: Target, user: str, http: httpx.Client) -> None:
    checksum = store(http, target, user, os.urandom(100))
    assert _delete(http, target, new_user(), checksum).status_code == 404
    assert [item["sha256"] for item in my_files(http, target, user)] == [checksum]


def test_a_shared_file_stays_for_its_other_owner(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = os.urandom(100)
    other = new_user()
    checksum = store(http, target, user, body)
    store(http, target, other, body)
    assert _delete(http, target, user, checksum).status_code == 204
    assert fetch(http, target, user, checksum).status_code == 404
    assert fetch(http, target, other, checksum).content == body


@pytest.mark.parametrize("allowed", [True, False])
def test_physical_deletion_follows_the_location(
    start: StartTarget, user: str, http: httpx.Client, tmp_path: Path, allowed: bool
) -> None:
    config = tmp_path / "tusgate.toml"
    config.write_text(
        f"[[locations]]\nname = 'archive'\nallow_physical_deletion = {str(allowed).lower()}\n"
    )
    target = start("embedded", TUSGATE_CONFIG=str(config))
    body = os.urandom(100)
    upload_id = upload(http, target, user, body).rsplit("/", 1)[1]
    stored = Path(target.env["TUSGATE_DATA_DIR"], "files", "archive", upload_id)
    assert stored.read_bytes() == body
    assert _delete(http, target, user, sha256(body)).status_code == 204
    assert my_files(http, target, user) == []
    assert fetch(http, target, user, sha256(body)).status_code == 404
    assert stored.exists() is not allowed
