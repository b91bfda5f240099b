"""The bucket's own rules: created by `storage init`, honouring legal holds and dedupe."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.gateways import StartTarget, Target
from tests.services import REPO_ROOT, S3_ACCESS_KEY, S3_SECRET_KEY, MotoServer
from tests.tus.client import OCTETS

ADMIN = ("admin",)


def _env(s3: MotoServer, data_dir: Path, bucket: str) -> dict[str, str]:
    return {
        "TUSGATE_DATA_DIR": str(data_dir),
        "TUSGATE_STORE": "s3",
        "TUSGATE_S3_ENDPOINT_URL": s3.endpoint_url,
        "TUSGATE_S3_BUCKET": bucket,
        "TUSGATE_S3_ACCESS_KEY": S3_ACCESS_KEY,
        "TUSGATE_S3_SECRET_KEY": S3_SECRET_KEY,
    }


def _storage_init(s3: MotoServer, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Run ``storage init`` twice (it is idempotent); the bucket's rules by ID."""
    bucket = env["TUSGATE_S3_BUCKET"]
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "app", "storage", "init"],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"bucket '{bucket}'" in done.stdout
    rules = s3.client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    return {rule["ID"]: rule for rule in rules}


def test_storage_init_creates_the_bucket_and_its_lifecycle_rules(
    own_s3: MotoServer, tmp_path: Path
) -> None:
    env = _env(own_s3, tmp_path, f"new-{uuid.uuid4().hex[:10]}")
    rules = _storage_init(own_s3, {**env, "TUSGATE_RETENTION_DAYS": "20"})
    assert rules["tusgate-abort-unfinished"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 2
    }
    assert rules["tusgate-expire-tails"]["Expiration"]["Days"] == 2
    assert rules["tusgate-expire-files"]["Expiration"]["Days"] == 22
    assert rules["tusgate-expire-files"]["Filter"]["And"]["Tags"] == [
        {"Key": "tusgate-expiry", "Value": "auto"}
    ]


def test_no_rule_expires_files_where_physical_deletion_is_forbidden(
    own_s3: MotoServer, tmp_path: Path
) -> None:
    config = tmp_path / "tusgate.toml"
    config.write_text(
        "[[locations]]\nname = 'archive'\nbackend = 's3'\nallow_physical_deletion = false\n"
    )
    env = _env(own_s3, tmp_path, f"keep-{uuid.uuid4().hex[:10]}")
    rules = _storage_init(own_s3, {**env, "TUSGATE_CONFIG": str(config)})
    assert sorted(rules) == ["tusgate-abort-unfinished", "tusgate-expire-tails"]


def _tags(s3: MotoServer, target: Target) -> dict[str, str]:
    client = s3.client()
    bucket = target.env["TUSGATE_S3_BUCKET"]
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {
        key: client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"][0]["Value"] for key in keys
    }


def test_holds_opt_objects_out_and_the_newest_copy_is_kept(
    start: StartTarget, own_s3: MotoServer, user: str, http: httpx.Client
) -> None:
    target = start("services")
    body = os.urandom(3000)
    headers = target.headers(user, Upload_Length=str(len(body)), Content_Type=OCTETS)
    first = http.post(target.files_url, headers=headers, content=body).headers["location"]
    assert list(_tags(own_s3, target).values()) == ["auto"]
    digest = http.get(f"{target.url}/api/files", headers=target.headers(user)).json()["files"][0]
    hold = f"{target.url}/api/files/{digest['sha256']}/hold"
    admin = {**target.headers(user), "Authorization": f"Bearer {target.token('root', ADMIN)}"}
    assert http.put(hold, headers=admin).status_code == 204
    assert list(_tags(own_s3, target).values()) == ["held"]

    second = http.post(target.files_url, headers=headers, content=body).headers["location"]
    tags = _tags(own_s3, target)
    assert list(tags) == [second.rsplit("/", 1)[1]]  # the newer copy replaced the older one
    assert first.rsplit("/", 1)[1] not in tags
    assert list(tags.values()) == ["held"]  # and inherited the hold
    assert http.delete(hold, headers=admin).status_code == 204
    assert list(_tags(own_s3, target).values()) == ["auto"]
