"""The boundary with aioboto3: one configured client per store, and the map of its errors.

Everything the S3 store sends goes through a client made here and runs inside ``map_errors()``,
so no botocore or aiohttp exception ever leaves ``app.storage.s3``.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)

from app.settings import S3Settings
from app.storage.errors import (
    ObjectArchived,
    ObjectNotFound,
    StorageError,
    StorageFull,
    StorageUnavailable,
)

# aiobotocore ships no type stubs: the client is dynamic, every call returns a plain dict.
S3Client = Any

# Connections shared by every upload of one store; a request waits for a free one.
MAX_POOL_CONNECTIONS = 64

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchUpload", "404", "NotFound"})
# Codes that say "this store cannot be used right now" rather than "this request is wrong".
_UNAVAILABLE_CODES = frozenset(
    {
        "AccessDenied",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "NoSuchBucket",
        "ServiceUnavailable",
        "SignatureDoesNotMatch",
        "SlowDown",
        "503",
    }
)
# Failures of the network or of the credentials chain, after botocore's own retries.
_UNAVAILABLE_ERRORS = (
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
)


def client_config(settings: S3Settings) -> AioConfig:
    """The client's settings, and why.

    Checksums only where S3 demands them: botocore's newer default wraps every streamed body in
    aws-chunked encoding with a CRC trailer, which not every S3-compatible server understands.
    Few retries (a failed part is retried by the client's next PATCH anyway) and bounded
    timeouts. Path-style addressing for a custom endpoint (MinIO, moto): its buckets have no
    DNS names.
    """
    return AioConfig(
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=MAX_POOL_CONNECTIONS,
        s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
    )


def create_client(settings: S3Settings) -> AbstractAsyncContextManager[S3Client]:
    """A client for ``settings``; enter it once and keep it for the store's life.

    Without an access key, botocore's usual chain (environment, profile, instance role) applies.
    """
    session = aioboto3.Session()
    client: AbstractAsyncContextManager[S3Client] = session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        config=client_config(settings),
    )
    return client


@asynccontextmanager
async def map_errors() -> AsyncIterator[None]:
    """Turn the foreign errors raised inside the block into ``app.storage.errors``.

    Missing objects and uploads → ObjectNotFound; network, timeout and credential failures →
    StorageUnavailable; a full spool disk → StorageFull; any other botocore, aiohttp or OS
    error → StorageError. Errors of our own code (TypeError …) pass unchanged: they are bugs.
    """
    try:
        yield
    except ClientError as exc:
        raise _client_error(exc) from exc
    except _UNAVAILABLE_ERRORS as exc:
        raise StorageUnavailable(str(exc)) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorageFull(str(exc)) from exc
        raise StorageError(str(exc)) from exc
    except (BotoCoreError, aiohttp.ClientError) as exc:
        raise StorageError(str(exc)) from exc


def _client_error(exc: ClientError) -> StorageError:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in _NOT_FOUND_CODES:
        return ObjectNotFound(str(exc))
    if code in _UNAVAILABLE_CODES:
        return StorageUnavailable(str(exc))
    if code == "InvalidObjectState":
        return ObjectArchived(str(exc))
    return StorageError(str(exc))
