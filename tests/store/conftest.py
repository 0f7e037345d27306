"""Fixtures for the store tests: a database per backend, a Redis key space per test.

How each test is isolated, and what happens when a service is down: see store_services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.services import delete_prefix, ensure_postgres, ensure_redis, fresh_database, new_redis_prefix
from store.db import create_engine, migrate
from store.records import CallRecords


@pytest.fixture
async def requires_postgres() -> None:
    await ensure_postgres()


@pytest.fixture
async def requires_redis() -> None:
    await ensure_redis()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each backend, unmigrated."""
    async with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def records(engine: AsyncEngine) -> AsyncIterator[CallRecords]:
    async with CallRecords(engine) as records:
        yield records


@pytest.fixture
async def redis_prefix(requires_redis: None) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = new_redis_prefix()
    yield prefix
    await delete_prefix(prefix)
