"""The throwaway services answer real clients, as the rest of the suite assumes."""

from __future__ import annotations

import asyncpg
import boto3
import pytest
import redis.asyncio

from tests.services import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, PostgresServer

pytestmark = pytest.mark.anyio


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_postgres_answers_select_1(postgres_url: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(postgres_url))
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_each_test_gets_an_empty_database(postgres: PostgresServer) -> None:
    first, second = postgres.new_database(), postgres.new_database()
    assert first != second
    conn = await asyncpg.connect(_asyncpg_dsn(first))
    try:
        await conn.execute("CREATE TABLE t (x int)")
    finally:
        await conn.close()
    conn = await asyncpg.connect(_asyncpg_dsn(second))
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 't'") == 0
    finally:
        await conn.close()


async def test_postgres_restart_keeps_committed_data(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (42)")
    finally:
        await conn.close()
    postgres.restart()
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        assert await conn.fetchval("SELECT x FROM t") == 42
    finally:
        await conn.close()


@pytest.mark.parametrize("run", [1, 2])
async def test_redis_answers_ping_and_starts_empty(redis_url: str, run: int) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await client.ping() is True
        assert await client.dbsize() == 0
        await client.set("left-behind", run)
    finally:
        await client.aclose()


def test_s3_put_then_get(s3_bucket: tuple[str, str]) -> None:
    endpoint_url, bucket = s3_bucket
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name=S3_REGION,
    )
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hello"
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]
