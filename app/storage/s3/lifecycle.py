"""The bucket's own expiry rules: a second line of defence behind the sweeper.

Rules are chosen by object tag, so that legal holds can opt objects out (an object tagged
``held`` matches no rule) and commit records expire sooner than files:

- incomplete multipart uploads are aborted ``unfinished_days`` after they began;
- ``tusgate-expiry=tail`` objects expire after ``unfinished_days``;
- ``tusgate-expiry=auto`` objects expire ``retention_days`` after they were written — the
  catalogue keeps the newest upload's copy of a file, so no owner is younger than its object —
  unless the location forbids physical deletion (``retention_days`` None): then files stay.
"""

from __future__ import annotations

from typing import Any

from app.storage.base import ExpiryPolicy
from app.storage.errors import StorageError
from app.storage.s3.client import map_errors

TAG = "tusgate-expiry"
EXPIRES = f"{TAG}=auto"
TAIL = f"{TAG}=tail"
HELD = f"{TAG}=held"


def rules(prefix: str, policy: ExpiryPolicy) -> list[dict[str, Any]]:
    def tagged(value: str) -> dict[str, Any]:
        tag = {"Key": TAG, "Value": value.partition("=")[2]}
        return {"And": {"Prefix": prefix, "Tags": [tag]}}

    kept = [
        {
            "ID": "tusgate-abort-unfinished",
            "Status": "Enabled",
            "Filter": {"Prefix": prefix},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": policy.unfinished_days},
        },
        {
            "ID": "tusgate-expire-tails",
            "Status": "Enabled",
            "Filter": tagged(TAIL),
            "Expiration": {"Days": policy.unfinished_days},
        },
    ]
    if policy.retention_days is None:
        return kept
    files = {
        "ID": "tusgate-expire-files",
        "Status": "Enabled",
        "Filter": tagged(EXPIRES),
        "Expiration": {"Days": policy.retention_days},
    }
    return [*kept, files]


async def provision(client: Any, bucket: str, prefix: str, policy: ExpiryPolicy) -> None:
    """Create the bucket if it is missing, then write the rules."""
    try:
        async with map_errors():
            await client.head_bucket(Bucket=bucket)
    except StorageError:
        async with map_errors():
            await client.create_bucket(Bucket=bucket)
    async with map_errors():
        await client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": rules(prefix, policy)}
        )
