"""A database outage under the call records: writes go on into the disk journal, in order, and come
back whole: the database ends with exactly the timelines it would have had without the outage."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from outage_tools import Outage, kill9_once_buffered
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from store_helpers import event
from test_call_records import new_call

from dialplan.timeline import CallSummary
from harness.services import fresh_database
from store.db import create_engine, migrate
from store.disk_journal import JOURNAL_FILE, SET_ASIDE_FILE, DiskJournal
from store.records import CallRecord, CallRecords, UnknownCall

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
IDS = ("a" * 32, "b" * 32, "c" * 32)

Step = Callable[[str], Awaitable[None]]


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def calls_played(records: CallRecords, at: Step) -> list[CallSummary]:
    """Three calls, the database going away (`at("down")`) and coming back (`at("up")`) in their midst."""
    a, b, c = (new_call(id=call_id, worker=n) for n, call_id in enumerate(IDS))
    await records.open_call(a, [event("arrived", 0), event("queued", 1)])
    await records.open_call(b, [event("arrived", 0.5)])
    await records.append(a.id, [event("offered", 3, agent="ana")])
    await at("down")
    # A burst at the moment it goes: the failed batch and everything after it are buffered, in order.
    await asyncio.gather(
        records.append(a.id, [event("answered", 5, agent="ana")]),
        records.append(b.id, [event("queued", 2)]),
        records.heartbeat([a.id, b.id], event("x", 6).at, event("x", 6).mono),
    )
    summary_b = await records.close(b.id, [event("ended", 8, by="caller")])
    await records.open_call(c, [event("arrived", 9), event("queued", 9.5)])
    await records.append(c.id, [event("offered", 10, agent="bob")])
    await at("up")
    # Back, but the backlog is not replayed yet: these must not overtake it.
    await records.append(a.id, [event("hold", 10)])
    await records.append(a.id, [event("unhold", 15)])
    summary_a = await records.close(a.id, [event("ended", 20, by="agent")])
    await records.after_close(a.id, [event("wrap_up_ended", 30, agent="ana")])
    summary_c = await records.close(c.id, [event("ended", 12, by="caller")])
    await at("end")
    return [summary_a, summary_b, summary_c]


async def stored(records: CallRecords) -> list[CallRecord | None]:
    return [await records.get_call(call_id) for call_id in IDS]


@pytest.fixture
async def reference(backend: str, tmp_path: Path) -> AsyncIterator[tuple[list[CallSummary], list[CallRecord | None]]]:
    """The same calls on a database that never went away."""
    async with fresh_database(backend, tmp_path / "reference") as url:
        engine = create_engine(url)
        await migrate(engine)

        async def nothing(_: str) -> None:
            return None

        async with CallRecords(engine) as records:
            summaries = await calls_played(records, nothing)
            yield summaries, await stored(records)
        await engine.dispose()


async def test_an_outage_loses_nothing_and_reorders_nothing(
    engine: AsyncEngine, tmp_path: Path, reference: tuple[list[CallSummary], list[CallRecord | None]]
) -> None:
    journal_dir = tmp_path / "journal"
    records = CallRecords(engine, disk_journal=DiskJournal(journal_dir))
    await records.start()
    assert records.outage is not None
    # Slower retries than the default: the writes right after recovery surely find the backlog there.
    records.outage.retry_min_s = records.outage.retry_max_s = 1.0
    outage = Outage(records.journal.sync_engine)
    seen: dict[str, object] = {}

    async def at(step: str) -> None:
        if step == "down":
            outage.down = True
        elif step == "up":
            assert records.buffering
            seen["buffered_in_outage"] = records.buffered
            lines = (journal_dir / JOURNAL_FILE).read_bytes().splitlines()
            # Every write the callers were answered for is in the file (fsynced before the answer).
            seen["lines"] = len(lines)
            outage.down = False
            seen["up_at"] = time.monotonic()
        elif step == "end":
            seen["still_buffering_at_end"] = records.buffering
            seen["buffered_at_end"] = records.buffered

    try:
        summaries = await calls_played(records, at)
        seen["caught_up_s"] = await wait_until(lambda: not records.buffering)
        assert records.buffered == 0
        after = await stored(records)
    finally:
        await records.stop()
        outage.remove()

    # 3 writes in the burst, close b, open c, append c.
    assert seen["buffered_in_outage"] == seen["lines"] == 6
    assert seen["still_buffering_at_end"] is True, "writes after recovery queued behind the backlog"
    assert seen["buffered_at_end"] == 11
    assert outage.refused >= 1
    expected_summaries, expected = reference
    assert summaries == expected_summaries, "summaries while buffering are those the database would give"
    assert after == expected, "the same rows and timelines as without the outage"
    assert not (journal_dir / JOURNAL_FILE).exists(), "an emptied journal leaves no file"
    assert records.outage.stats.buffered == records.outage.stats.replayed == 11
    print(
        f"\noutage: {seen['buffered_in_outage']} writes buffered while down, 11 in all, "
        f"replayed {seen['caught_up_s']:.2f} s after the database came back"
    )


async def test_a_write_committed_though_reported_lost_is_not_stored_twice(
    engine: AsyncEngine, tmp_path: Path, reference: tuple[list[CallSummary], list[CallRecord | None]]
) -> None:
    records = CallRecords(engine, disk_journal=DiskJournal(tmp_path / "journal"))
    await records.start()
    outage = Outage(records.journal.sync_engine)

    async def at(step: str) -> None:
        if step == "down":
            # The burst commits, then its connection "breaks": buffered, and replayed over itself.
            outage.commit_then_fail = 1
        elif step == "up":
            assert records.buffering

    try:
        summaries = await calls_played(records, at)
        await wait_until(lambda: not records.buffering)
        after = await stored(records)
    finally:
        await records.stop()
        outage.remove()
    assert summaries == reference[0]
    assert after == reference[1]


async def test_refusals_still_reach_the_caller_and_outage_writes_are_refused_at_replay(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    records = CallRecords(engine, disk_journal=DiskJournal(journal_dir))
    await records.start()
    outage = Outage(records.journal.sync_engine)
    try:
        call = new_call()
        await records.open_call(call, [event("arrived", 0)])
        with pytest.raises(IntegrityError):
            await records.open_call(call, [event("arrived", 0)])
        with pytest.raises(UnknownCall):
            await records.append("f" * 32, [event("queued", 1)])
        assert not records.buffering, "a refusal is not an outage"

        outage.down = True
        await records.append("f" * 32, [event("queued", 1)])  # unknown: buffered all the same
        await records.append(call.id, [event("queued", 2)])
        assert records.buffering
        outage.down = False
        await wait_until(lambda: not records.buffering)
        record = await records.get_call(call.id)
    finally:
        await records.stop()
        outage.remove()
    assert record is not None
    assert [e.kind for e in record.events] == ["arrived", "queued"], "the refused one held nothing up"
    refused = (journal_dir / SET_ASIDE_FILE).read_text()
    assert "UnknownCall" in refused
    assert records.outage is not None
    assert records.outage.stats.refused == 1


async def test_kill9_during_an_outage_then_the_next_start_replays_before_closing_interrupted(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    call_id = "d" * 32
    status, line, printed = await kill9_once_buffered(
        HERE / "outage_child.py", database_url, str(journal_dir), call_id, "node-k", cwd=REPO
    )
    assert status == -signal.SIGKILL
    assert line == b"buffered 4\n", printed

    async with CallRecords(engine) as plain:
        before = await plain.get_call(call_id)
    assert before is not None
    assert [e.kind for e in before.events] == ["arrived"], "only the first write got through"

    records = CallRecords(engine, disk_journal=DiskJournal(journal_dir))
    async with records:
        assert records.buffered == 0, "start replayed what the last run left"
        assert not records.buffering
        closed = await records.close_interrupted(node="node-k", reason="bridge restarted")
        first = await records.get_call(call_id)
        second = await records.get_call("e" * 32)
    assert sorted(closed) == [call_id, "e" * 32]
    assert first is not None
    assert second is not None
    assert [e.kind for e in first.events] == ["arrived", "queued", "offered", "answered", "interrupted"]
    # Interrupted when last known alive: the buffered heartbeat, replayed first, says when.
    assert first.last_mono == event("heartbeat", 9.5).mono
    assert (first.outcome, first.duration_ms, first.talk_ms) == ("interrupted", 9500, 5500)
    assert [e.kind for e in second.events] == ["arrived", "queued", "interrupted"]
    assert not (journal_dir / JOURNAL_FILE).exists()


async def test_a_database_that_hangs_is_an_outage_too(engine: AsyncEngine, backend: str, tmp_path: Path) -> None:
    records = CallRecords(engine, disk_journal=DiskJournal(tmp_path / "journal"), write_timeout_s=0.5)
    await records.start()
    lock_holder = await engine.connect()
    try:
        call = new_call()
        await records.open_call(call, [event("arrived", 0)])
        # Another session holds the calls' write lock: the writer's transaction waits, and waits.
        transaction = await lock_holder.begin()
        if backend == "postgresql":
            await lock_holder.exec_driver_sql("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
        else:
            await lock_holder.exec_driver_sql("UPDATE calls SET caller = caller")
        started = time.monotonic()
        await records.append(call.id, [event("queued", 1)])
        waited = time.monotonic() - started
        assert records.buffering
        await transaction.rollback()
        await wait_until(lambda: not records.buffering)
        record = await records.get_call(call.id)
    finally:
        await lock_holder.close()
        await records.stop()
    assert waited < 2.0, f"the caller waited {waited:.2f} s"
    assert record is not None
    assert [e.kind for e in record.events] == ["arrived", "queued"]
    assert record.event_count == 2


async def test_two_appends_to_one_call_committed_though_reported_lost_are_not_stored_twice(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    # One batch, two appends to the same call: replaying the first must not take the second's
    # presence at the end of the timeline for its own absence.
    records = CallRecords(engine, disk_journal=DiskJournal(tmp_path / "journal"))
    await records.start()
    outage = Outage(records.journal.sync_engine)
    call = new_call(id=IDS[0])
    try:
        await records.open_call(call, [event("arrived", 0)])
        outage.commit_then_fail = 1
        await asyncio.gather(
            records.append(call.id, [event("queued", 1)]),
            records.append(call.id, [event("offered", 2, agent="ana")]),
            records.append(call.id, [event("answered", 3, agent="ana")]),
        )
        assert records.buffering
        await wait_until(lambda: not records.buffering)
        stored_call = await records.get_call(call.id)
    finally:
        await records.stop()
        outage.remove()
    assert stored_call is not None
    assert [e.kind for e in stored_call.events] == ["arrived", "queued", "offered", "answered"]
