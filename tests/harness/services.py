"""The real services the store tests use, and what to do when one is down.

PostgreSQL isolation: each test gets a fresh schema ``test_<random>`` in the
`test` database, reached through ``?search_path=<schema>`` in the URL it is
given (store.db passes it to the server as a connection setting, so the
engine, Alembic, and child processes all land in that schema), and dropped
with CASCADE afterwards. Redis isolation: each test gets the key prefix
``test:<random>:`` and only keys under it are deleted.

A service that is down skips its tests, except with CI=true, where it fails them.
(Imported by name, not through conftest: other test directories have conftests too.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

import asyncpg  # type: ignore[import-untyped]
import pytest
import redis.asyncio as redis

POSTGRES_URL = os.environ.get("HOTLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HOTLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_problems: dict[str, str | None] = {}


def unavailable(service: str, problem: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{service} is required when CI=true, but: {problem}")
    pytest.skip(f"{service} unavailable ({problem}); with CI=true this fails instead")


async def _postgres_problem() -> str | None:
    if "postgres" not in _problems:
        try:
            connection = await asyncpg.connect(POSTGRES_URL, timeout=3)
            await connection.close()
            _problems["postgres"] = None
        except (OSError, TimeoutError, asyncpg.PostgresError) as error:
            _problems["postgres"] = f"{POSTGRES_URL}: {error!r}"
    return _problems["postgres"]


async def _redis_problem() -> str | None:
    if "redis" not in _problems:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        try:
            await client.ping()
            _problems["redis"] = None
        except (OSError, redis.RedisError) as error:
            _problems["redis"] = f"{REDIS_URL}: {error!r}"
        finally:
            await client.aclose()
    return _problems["redis"]


async def ensure_postgres() -> None:
    """Return if PostgreSQL answers; otherwise skip the test (fail it under CI=true)."""
    problem = await _postgres_problem()
    if problem is not None:
        unavailable("PostgreSQL", problem)


async def ensure_redis() -> None:
    """Return if Redis answers; otherwise skip the test (fail it under CI=true)."""
    problem = await _redis_problem()
    if problem is not None:
        unavailable("Redis", problem)


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh, empty schema; yields a database URL that works inside it."""
    await ensure_postgres()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@asynccontextmanager
async def fresh_database(backend: str, directory: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'records.db'}"
        return
    async with postgres_schema() as url:
        yield url


def new_redis_prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


async def delete_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
