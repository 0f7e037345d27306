from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine
from store_helpers import T0, event

from dialplan.timeline import Outcome, TimelineEvent
from store.call_record import NewCall
from store.db import create_engine
from store.records import CallClosed, CallRecords, UnknownCall

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def new_call(**overrides: Any) -> NewCall:
    fields: dict[str, Any] = {
        "sip_call_id": "a84b4c76e66710@pc33",
        "caller": "+33612345678",
        "caller_display": "Alice",
        "did": "+33180000000",
        "source": "192.0.2.10:5060",
        "client_id": "acme",
        "line_id": "sales",
        "worker": 0,
        "node": "node-a",
    }
    fields.update(overrides)
    return NewCall(**fields)


ANSWERED_CALL = [
    event("arrived", 0),
    event("queued", 1),
    event("offered", 3, agent="ana"),
    event("answered", 5, agent="ana"),
    event("hold", 10),
    event("unhold", 15),
]
ENDED = event("ended", 65.1237, by="caller")


async def test_an_answered_call_is_summarised_in_its_row(records: CallRecords) -> None:
    call = new_call()
    await records.open_call(call, ANSWERED_CALL[:2])
    await records.append(call.id, ANSWERED_CALL[2:4])
    await records.append(call.id, ANSWERED_CALL[4:])
    summary = await records.close(call.id, [ENDED])

    assert summary.outcome is Outcome.ANSWERED
    record = await records.get_call(call.id)
    assert record is not None
    assert (record.outcome, record.ended_by, record.answered_by, record.sip_status) == (
        "answered",
        "caller",
        "ana",
        None,
    )
    assert record.ended_at == ENDED.at
    assert (record.duration_ms, record.queue_wait_ms, record.ring_ms, record.talk_ms, record.hold_ms) == (
        65124,
        4000,
        2000,
        55124,
        5000,
    )
    assert record.last_mono == ENDED.mono
    assert record.event_count == 7
    assert [e.kind for e in record.events] == [e.kind for e in [*ANSWERED_CALL, ENDED]]
    assert record.events[3].data == {"agent": "ana"}
    assert record.events == (*ANSWERED_CALL, ENDED)


async def test_a_rejected_call_keeps_its_sip_status(records: CallRecords) -> None:
    call = new_call(client_id=None, line_id=None)
    await records.open_call(call, [event("arrived", 0)])
    summary = await records.close(call.id, [event("rejected", 0.02, status=486)])
    record = await records.get_call(call.id)
    assert record is not None
    assert (summary.outcome, record.outcome, record.sip_status) == (Outcome.REJECTED, "rejected", 486)
    assert (record.duration_ms, record.talk_ms) == (20, 0)


async def test_closing_twice_returns_the_first_summary_and_writes_nothing(records: CallRecords) -> None:
    call = new_call()
    await records.open_call(call, [event("arrived", 0), event("queued", 1)])
    first = await records.close(call.id, [event("ended", 31, by="caller")])
    before = await records.get_call(call.id)
    again = await records.close(call.id, [event("interrupted", 99)])
    after = await records.get_call(call.id)
    assert first.outcome is Outcome.ABANDONED
    assert again == first
    assert after == before


async def test_open_calls_refuse_terminal_events_outside_close(records: CallRecords) -> None:
    call = new_call()
    with pytest.raises(ValueError, match="close"):
        await records.open_call(call, [event("arrived", 0), event("ended", 1)])
    await records.open_call(call, [event("arrived", 0)])
    with pytest.raises(ValueError, match="close"):
        await records.append(call.id, [event("rejected", 1)])
    with pytest.raises(ValueError, match="ending with"):
        await records.close(call.id, [event("queued", 1)])
    with pytest.raises(ValueError, match="naive"):
        await records.append(call.id, [TimelineEvent("queued", datetime(2026, 1, 1), 1.0)])
    with pytest.raises(ValueError, match="JSON"):
        await records.append(call.id, [event("queued", 1, when=datetime.now(UTC))])
    record = await records.get_call(call.id)
    assert record is not None
    assert [e.kind for e in record.events] == ["arrived"]


async def test_writes_to_unknown_or_closed_calls_fail_alone(records: CallRecords) -> None:
    call = new_call()
    await records.open_call(call, [event("arrived", 0)])
    await records.close(call.id, [event("ended", 2)])
    results = await asyncio.gather(
        records.append("nope", [event("queued", 1)]),
        records.append(call.id, [event("queued", 3)]),
        records.open_call(new_call(), [event("arrived", 0)]),
        return_exceptions=True,
    )
    assert isinstance(results[0], UnknownCall)
    assert isinstance(results[1], CallClosed)
    assert results[2] is None
    assert await records.get_call("nope") is None


async def test_interrupted_calls_end_when_last_known_alive(records: CallRecords) -> None:
    call = new_call()
    await records.open_call(call, [event("arrived", 0), event("queued", 1)])
    await records.append(call.id, [event("offered", 2, agent="bo"), event("answered", 4, agent="bo")])
    alive = event("heartbeat", 30)
    await records.heartbeat([call.id], alive.at, alive.mono)
    stale = event("heartbeat", 20)
    await records.heartbeat([call.id], stale.at, stale.mono)  # late and older: ignored

    assert await records.close_interrupted(node="node-a", reason="node restarted") == [call.id]

    record = await records.get_call(call.id)
    assert record is not None
    last = record.events[-1]
    assert (last.kind, last.at, last.mono, dict(last.data)) == (
        "interrupted",
        alive.at,
        alive.mono,
        {"reason": "node restarted"},
    )
    assert (record.outcome, record.ended_by, record.ended_at) == ("interrupted", "system", alive.at)
    assert (record.duration_ms, record.talk_ms, record.answered_by) == (30000, 26000, "bo")


async def test_close_interrupted_matches_only_open_calls_of_its_filters(records: CallRecords) -> None:
    calls = {
        "w0": new_call(worker=0),
        "w1": new_call(worker=1),
        "other_node": new_call(worker=0, node="node-b"),
        "closed": new_call(worker=0),
    }
    for call in calls.values():
        await records.open_call(call, [event("arrived", 0)])
    await records.close(calls["closed"].id, [event("ended", 1)])

    assert sorted(await records.open_call_ids()) == sorted(c.id for k, c in calls.items() if k != "closed")
    assert await records.open_call_ids(node="node-b") == [calls["other_node"].id]
    assert await records.close_interrupted(worker=0, node="node-a", reason="worker died") == [calls["w0"].id]
    assert await records.close_interrupted(call_ids=[calls["closed"].id], reason="x") == []
    assert await records.close_interrupted(call_ids=[], reason="x") == []
    assert await records.open_call_ids(node="node-a") == [calls["w1"].id]
    with pytest.raises(ValueError, match="needs"):
        await records.close_interrupted(reason="everything?")


async def test_heartbeats_skip_closed_calls(records: CallRecords) -> None:
    call = new_call()
    await records.open_call(call, [event("arrived", 0)])
    await records.close(call.id, [event("ended", 5)])
    late = event("heartbeat", 9)
    await records.heartbeat([call.id], late.at, late.mono)
    record = await records.get_call(call.id)
    assert record is not None
    assert record.last_mono == event("ended", 5).mono


async def test_list_calls_filters_and_orders_newest_first(records: CallRecords) -> None:
    made = []
    for minute, client in enumerate(["c1", "c2", "c3", "c1", "c2", "c1"]):
        call = new_call(client_id=client)
        await records.open_call(call, [event("arrived", 0, start=T0 + timedelta(minutes=minute))])
        made.append(call.id)
    await records.close(made[0], [event("ended", 9, by="caller")])
    await records.close(made[3], [event("ended", 9, start=T0 + timedelta(minutes=3), by="caller")])

    async def listed(**filters: Any) -> list[str]:
        return [r.id for r in await records.list_calls(**filters)]

    assert await listed() == made[::-1]
    assert await listed(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=4)) == made[3:0:-1]
    assert await listed(client_ids=["c1"]) == [made[5], made[3], made[0]]
    assert await listed(client_ids={"c2", "c3"}) == [made[4], made[2], made[1]]
    assert await listed(client_ids=[]) == []
    with pytest.raises(TypeError, match="string"):
        await listed(client_ids="c1")
    assert await listed(outcome="abandoned") == [made[3], made[0]]
    assert await listed(limit=2, offset=1) == made[4:2:-1]
    listed_records = await records.list_calls(limit=1)
    assert listed_records[0].events == ()
    assert listed_records[0].outcome is None


async def test_list_calls_breaks_arrival_ties_by_id(records: CallRecords) -> None:
    ids = ["a" * 32, "b" * 32, "c" * 32]
    for call_id in ids:
        await records.open_call(new_call(id=call_id), [event("arrived", 0)])
    assert [r.id for r in await records.list_calls()] == ids[::-1]


async def test_instants_come_back_as_aware_utc(records: CallRecords, engine: AsyncEngine) -> None:
    paris = timezone(timedelta(hours=2))
    arrived_at = datetime(2026, 6, 1, 11, 0, 0, 123456, tzinfo=paris)
    call = new_call()
    await records.open_call(call, [TimelineEvent("arrived", arrived_at, 10.0)])
    record = await records.get_call(call.id)
    assert record is not None
    for instant in (record.arrived_at, record.last_alive_at, record.events[0].at):
        assert instant == arrived_at
        assert instant.tzinfo is UTC or instant.utcoffset() == timedelta(0)
        assert instant.hour == 9
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            raw = (await connection.exec_driver_sql("SELECT arrived_at FROM calls")).scalar_one()
        assert raw == "2026-06-01 09:00:00.123456"
    listed = await records.list_calls(since=datetime(2026, 6, 1, 10, 59, tzinfo=paris))
    assert [r.id for r in listed] == [call.id]


async def test_to_json_speaks_utc_z_and_both_duration_units(records: CallRecords) -> None:
    call = new_call()
    await records.open_call(call, ANSWERED_CALL)
    open_document = (await records.list_calls())[0].to_json()
    assert open_document["outcome"] is None
    assert open_document["duration_s"] is None
    assert open_document["ended_at"] is None

    await records.close(call.id, [ENDED])
    record = await records.get_call(call.id)
    assert record is not None
    document = record.to_json()
    assert document["arrived_at"] == "2026-03-01T09:00:00.000000Z"
    assert document["ended_at"] == "2026-03-01T09:01:05.123700Z"
    assert (document["duration_ms"], document["duration_s"]) == (65124, 65.124)
    assert (document["talk_ms"], document["talk_s"]) == (55124, 55.124)
    assert document["events"][3] == {
        "kind": "answered",
        "at": "2026-03-01T09:00:05.000000Z",
        "mono": 5005.0,
        "data": {"agent": "ana"},
    }


async def test_group_commit_batches_concurrent_appends(records: CallRecords) -> None:
    calls = [new_call() for _ in range(10)]
    for call in calls:
        await records.open_call(call, [event("arrived", 0)])
    commits = [0]

    def on_commit(_connection: Any) -> None:
        commits[0] += 1

    sa_event.listen(records.journal.sync_engine, "commit", on_commit)
    await asyncio.gather(
        *(records.append(call.id, [event("offered", n, agent=f"agent{n}")]) for n in range(20) for call in calls)
    )
    sa_event.remove(records.journal.sync_engine, "commit", on_commit)

    assert 0 < commits[0] < 200
    for call in calls:
        record = await records.get_call(call.id)
        assert record is not None
        assert [e.data.get("agent") for e in record.events[1:]] == [f"agent{n}" for n in range(20)]
        assert record.last_mono == event("offered", 19).mono


async def test_writers_on_separate_engines_continue_one_timeline(database_url: str, records: CallRecords) -> None:
    """Two journals (as two processes would have) appending to one call: seqs stay contiguous."""
    call = new_call()
    await records.open_call(call, [event("arrived", 0)])
    other_engine = create_engine(database_url)
    try:
        async with CallRecords(other_engine, max_batch=4) as other:
            await asyncio.gather(
                *(
                    (records if n % 2 else other).append(call.id, [event("offered", n, agent=f"agent{n}")])
                    for n in range(1, 81)
                )
            )
    finally:
        await other_engine.dispose()
    record = await records.get_call(call.id)
    assert record is not None
    assert record.event_count == len(record.events) == 81
    assert sorted(e.data["agent"] for e in record.events[1:]) == sorted(f"agent{n}" for n in range(1, 81))
    assert record.last_mono == event("offered", 80).mono


async def test_a_confirmed_write_survives_kill_9(database_url: str, engine: AsyncEngine) -> None:
    call_id = "d" * 32
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "durability_child.py"),
        database_url,
        call_id,
        "node-k",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
        if line != b"committed\n":
            _, stderr = await child.communicate()
            pytest.fail(f"child did not confirm its write: {line!r}\n{stderr.decode()}")
    finally:
        if child.returncode is None:
            os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    async with CallRecords(engine) as records:
        record = await records.get_call(call_id)
        assert record is not None
        assert [e.kind for e in record.events] == ["arrived", "queued"]
        assert record.last_mono == event("heartbeat", 7.5).mono
        assert await records.close_interrupted(node="node-k", reason="found open at start") == [call_id]
        closed = await records.get_call(call_id)
    assert closed is not None
    assert (closed.outcome, closed.duration_ms, closed.queue_wait_ms) == ("interrupted", 7500, 6500)


async def test_a_closed_call_takes_its_agent_s_wrap_up_end_and_nothing_else(records: CallRecords) -> None:
    call = new_call()
    await records.open_call(call, [event("arrived", 0), event("queued", 1)])
    await records.append(call.id, [event("answered", 5, agent="alice")])
    with pytest.raises(ValueError, match="still open"):
        await records.after_close(call.id, [event("wrap_up_ended", 6, agent="alice")])
    await records.close(call.id, [event("ended", 65, by="caller")])
    with pytest.raises(ValueError, match="after_close takes only"):
        await records.after_close(call.id, [event("hold", 66)])
    await records.after_close(call.id, [event("wrap_up_ended", 75, agent="alice")])
    stored = await records.get_call(call.id)
    assert stored is not None
    assert (stored.outcome, stored.talk_ms, stored.wrap_up_ms) == ("answered", 60_000, 10_000)
    assert stored.to_json()["wrap_up_s"] == 10.0
    assert [e.kind for e in stored.events][-2:] == ["ended", "wrap_up_ended"]
