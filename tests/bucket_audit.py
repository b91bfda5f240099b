"""What the bucket holds against what the database says it should: the crash suite's audit.

Read straight from PostgreSQL and S3, beside the gateway, never through it: an object or a
multipart upload that no row accounts for is an orphan that nothing would ever free.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.gateways import Target
from tests.services import MotoServer, PostgresServer


@dataclass(frozen=True)
class Audit:
    objects: int  # in the bucket
    multipart_uploads: int  # in the bucket
    files: int  # catalogued, each read back and hashed
    unfinished: int  # uploads receiving


def rows(postgres: PostgresServer, target: Target, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql`` on the gateway's database, as dicts."""
    database = target.env["TUSGATE_DATABASE_URL"].rsplit("/", 1)[1]
    text = postgres.psql(f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t", database=database)
    found: list[dict[str, Any]] = json.loads(text)
    return found


def audit(postgres: PostgresServer, target: Target, s3: MotoServer) -> Audit:
    """Check that the bucket holds exactly what the database accounts for, and that every
    catalogued file is whole; raises AssertionError naming what is wrong."""
    uploads = rows(
        postgres, target, "SELECT id, state, concat, store_key, store_state FROM uploads"
    )
    copies = rows(
        postgres,
        target,
        "SELECT c.store_key, f.size, f.sha256 FROM file_copies c JOIN files f USING (sha256)",
    )
    pending = rows(postgres, target, "SELECT store_key FROM pending_deletions")
    assert not [u["id"] for u in uploads if u["state"] == "completing"], "completions left over"
    ended = [u["id"] for u in uploads if u["state"] in ("expired", "terminated") and u["store_key"]]
    assert not ended, f"ended uploads whose bytes were not freed: {ended}"
    assert not pending, f"deletions left pending: {pending}"

    receiving = [u for u in uploads if u["state"] == "receiving"]
    held_objects = {u["store_key"] for u in uploads if u["store_key"]}
    expected_objects = {c["store_key"] for c in copies} | held_objects
    expected_objects |= {u["store_key"] + ".tail" for u in receiving}
    expected_multipart = {
        (u["store_key"], json.loads(u["store_state"])["multipart_id"]) for u in receiving
    }
    client = s3.client()
    bucket = target.env["TUSGATE_S3_BUCKET"]
    objects = {
        obj["Key"]: obj["Size"] for obj in _listed(client, bucket, "list_objects_v2", "Contents")
    }
    multipart = {
        (m["Key"], m["UploadId"])
        for m in _listed(client, bucket, "list_multipart_uploads", "Uploads")
    }
    assert not set(objects) - expected_objects, f"orphan objects: {set(objects) - expected_objects}"
    assert not multipart - expected_multipart, (
        f"orphan multipart uploads: {multipart - expected_multipart}"
    )
    for copy in copies:
        assert objects.get(copy["store_key"]) == copy["size"], f"file copy missing: {copy}"
        body = client.get_object(Bucket=bucket, Key=copy["store_key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == copy["sha256"], f"file copy corrupt: {copy}"
    return Audit(len(objects), len(multipart), len(copies), len(receiving))


def _listed(client: Any, bucket: str, operation: str, key: str) -> Iterable[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(Bucket=bucket):
        yield from page.get(key, [])


def check_quotas(
    http: httpx.Client,
    postgres: PostgresServer,
    target: Target,
    expected_files: dict[str, dict[str, int]],
) -> None:
    """Each owner's usage as the gateway reports it equals the sizes of the files the test
    uploaded for them (``owner → sha256 → size``) plus what their unfinished uploads reserve;
    and they own exactly those files."""
    for owner, files in expected_files.items():
        owned = rows(postgres, target, f"SELECT sha256 FROM file_owners WHERE owner = '{owner}'")
        assert {row["sha256"] for row in owned} == set(files), f"files of {owner}"
        unfinished = rows(
            postgres,
            target,
            "SELECT reserved FROM uploads WHERE state IN ('receiving', 'completing')"
            f" AND owner = '{owner}'",
        )
        response = http.get(f"{target.url}/api/me", headers=target.headers(owner))
        assert response.status_code == 200, response.text
        usage = response.json()["usage"]
        assert usage["stored_bytes"] == sum(files.values()), f"stored bytes of {owner}"
        assert usage["reserved_bytes"] == sum(row["reserved"] for row in unfinished), owner
        assert usage["uploads"] == len(unfinished), owner
