from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, event, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import create_engine
from store.journal import Journal, JournalClosed, Write

probe_metadata = MetaData()
probe = Table("probe", probe_metadata, Column("id", Integer, primary_key=True), Column("v", String))


async def engine_with_probe(url: str) -> AsyncEngine:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(probe_metadata.create_all)
    return engine


@pytest.fixture
async def probe_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Each backend: SQLite batches run in the journal's thread, PostgreSQL's on the event loop."""
    engine = await engine_with_probe(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_probe_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """For tests that hold the writer with a blocking gate: only the SQLite writer has its own thread."""
    engine = await engine_with_probe(f"sqlite:///{tmp_path / 'journal.db'}")
    yield engine
    await engine.dispose()


def count_commits(journal: Journal) -> list[int]:
    commits = [0]

    def on_commit(_connection: Any) -> None:
        commits[0] += 1

    event.listen(journal.sync_engine, "commit", on_commit)
    return commits


def insert_row(row_id: int, value: str = "x") -> Write[int]:
    def write(connection: Connection) -> int:
        connection.execute(insert(probe).values(id=row_id, v=value))
        return row_id

    return write


def blocking(gate: threading.Event) -> Write[None]:
    """A write that holds the writer (in the SQLite journal's thread) until `gate` opens."""

    def write(connection: Connection) -> None:
        gate.wait(timeout=30)

    return write


async def stored_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(probe.c.id).order_by(probe.c.id))).scalars())


async def test_an_awaited_write_is_committed(probe_engine: AsyncEngine) -> None:
    journal = Journal(probe_engine)
    await journal.start()
    try:
        assert await journal.write(insert_row(1)) == 1
        # Another connection sees it: it was committed, not merely executed.
        assert await stored_ids(probe_engine) == [1]
    finally:
        await journal.stop()


async def test_concurrent_writes_share_commits(probe_engine: AsyncEngine) -> None:
    journal = Journal(probe_engine)
    commits = count_commits(journal)
    await journal.start()
    try:
        results = await asyncio.gather(*(journal.write(insert_row(n)) for n in range(100)))
    finally:
        await journal.stop()
    assert results == list(range(100))
    assert await stored_ids(probe_engine) == list(range(100))
    assert commits[0] < 100
    assert journal.stats.transactions == commits[0]
    assert journal.stats.largest_batch > 1


async def test_batches_never_exceed_max_batch(probe_engine: AsyncEngine) -> None:
    journal = Journal(probe_engine, max_batch=8)
    await journal.start()
    try:
        await asyncio.gather(*(journal.write(insert_row(n)) for n in range(50)))
    finally:
        await journal.stop()
    assert journal.stats.largest_batch <= 8
    assert journal.stats.transactions >= 7


async def test_a_bad_write_fails_alone(probe_engine: AsyncEngine) -> None:
    journal = Journal(probe_engine)
    await journal.start()
    try:
        await journal.write(insert_row(5))
        outcomes = await asyncio.gather(*(journal.write(insert_row(n)) for n in range(10)), return_exceptions=True)
    finally:
        await journal.stop()
    assert isinstance(outcomes[5], IntegrityError)
    assert [o for n, o in enumerate(outcomes) if n != 5] == [n for n in range(10) if n != 5]
    assert await stored_ids(probe_engine) == list(range(10))
    assert journal.stats.retried_batches == 1
    assert journal.stats.failed_writes == 1


async def test_a_full_queue_makes_callers_wait(sqlite_probe_engine: AsyncEngine) -> None:
    probe_engine = sqlite_probe_engine
    journal = Journal(probe_engine, max_batch=1, max_queue=2)
    gate = threading.Event()
    await journal.start()
    try:
        first = asyncio.create_task(journal.write(blocking(gate)))
        await asyncio.sleep(0.05)  # the writer thread is now held by the gate
        waiting = [asyncio.create_task(journal.write(insert_row(n))) for n in range(5)]
        await asyncio.sleep(0.05)
        assert journal.queued() == 2
        assert not any(task.done() for task in waiting)
        gate.set()
        await asyncio.gather(first, *waiting)
    finally:
        gate.set()
        await journal.stop()
    assert await stored_ids(probe_engine) == list(range(5))


async def test_stop_writes_everything_queued_then_refuses(probe_engine: AsyncEngine) -> None:
    journal = Journal(probe_engine, max_batch=4, max_queue=8)
    await journal.start()
    tasks = [asyncio.create_task(journal.write(insert_row(n))) for n in range(20)]
    await asyncio.sleep(0)  # let every caller enter write(); some wait for room
    await journal.stop()
    assert [task.result() for task in tasks] == list(range(20))
    assert await stored_ids(probe_engine) == list(range(20))
    with pytest.raises(JournalClosed):
        await journal.write(insert_row(99))


async def test_writes_are_refused_before_start(probe_engine: AsyncEngine) -> None:
    with pytest.raises(JournalClosed):
        await Journal(probe_engine).write(insert_row(1))


async def test_a_cancelled_caller_still_gets_its_write(sqlite_probe_engine: AsyncEngine) -> None:
    probe_engine = sqlite_probe_engine
    journal = Journal(probe_engine)
    gate = threading.Event()
    await journal.start()
    try:
        first = asyncio.create_task(journal.write(blocking(gate)))
        await asyncio.sleep(0.05)
        cancelled = asyncio.create_task(journal.write(insert_row(7)))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        gate.set()
        await first
    finally:
        await journal.stop()
    assert cancelled.cancelled()
    assert await stored_ids(probe_engine) == [7]


def test_limits_are_checked(sqlite_probe_engine: AsyncEngine) -> None:
    probe_engine = sqlite_probe_engine
    with pytest.raises(ValueError, match="max_batch"):
        Journal(probe_engine, max_batch=0)
    with pytest.raises(ValueError, match="max_queue"):
        Journal(probe_engine, max_queue=0)
