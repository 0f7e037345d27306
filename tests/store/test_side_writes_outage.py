"""A database outage under the writes calls and agents make besides the call records: the agents' state
spans and the recordings' rows go through the records' journal, so they are buffered to the disk journal
with them, replayed in the order they were made, and replayed at the next start after a kill -9.

What a user asks for (a score, an audit of a playback) is not buffered: it is refused with
DatabaseUnavailable, which the web answers with a 503.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from outage_tools import Outage, kill9_once_buffered
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from store_helpers import T0, event
from test_call_records import new_call

from agent_client.web_app import WebContext, create_app
from agent_client.web_auth import Authenticator
from agent_client.web_recordings import add_recording_routes
from agent_client.web_supervisor import add_supervisor_routes
from config.tenant_file import demo_tenant_path, load_tenant
from dialplan.clock import SystemClock
from harness.services import fresh_database
from store.agent_states import AgentStateLog, state_spans
from store.call_scores import CallScore, CallScores
from store.db import create_engine, migrate
from store.disk_journal import JOURNAL_FILE, DiskJournal
from store.models import AgentStateSpanRow
from store.overflow_settings import OverflowChange, OverflowSettings, SavedOverflow
from store.recordings import Recording, RecordingAccess, Recordings
from store.records import CallRecord, CallRecords, DatabaseUnavailable
from telephony.call_recordings import CallRecordings

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
A, B = "a" * 32, "b" * 32

Step = Callable[[str], Awaitable[None]]
Span = tuple[str, str, str | None, str, datetime, datetime | None, datetime]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def recording_of(call_id: str, stored_s: float) -> Recording:
    return Recording(
        call_id=call_id,
        client_id="acme",
        file=f"2026/03/01/{call_id}.ogg",
        media_type="audio/ogg",
        duration_ms=12_500,
        size=40_960,
        started_by="policy",
        stored_at=at(stored_s),
        expires_at=at(stored_s) + timedelta(days=90),
    )


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def worked(records: CallRecords, states: AgentStateLog, recordings: Recordings, step: Step) -> None:
    """Two calls and two agents, the database going away (`step("down")`) and back (`step("up")`) meanwhile."""
    await records.open_call(new_call(id=A), [event("arrived", 0), event("queued", 1)])
    states.changed("ana", "paused", "signed in", at(0))
    states.changed("ana", "available", None, at(2))
    await states.flush()
    await step("down")
    states.changed("ana", "ringing", None, at(3))
    states.changed("ana", "on_call", None, at(5))
    states.changed("bob", "available", None, at(6))
    await states.flush()
    await records.append(A, [event("offered", 3, agent="ana"), event("answered", 5, agent="ana")])
    # A call that arrives during the outage: its recording's row must come after its own row.
    await records.open_call(new_call(id=B, worker=1), [event("arrived", 7), event("queued", 7.5)])
    states.changed("bob", "on_call", None, at(8))
    states.checkpoint(at(20))
    await states.flush()
    await records.close(B, [event("ended", 30, by="bob")])
    states.changed("bob", "wrap_up", None, at(30))
    states.changed("ana", "on_call", None, at(31))  # the same state again: its span goes on
    await states.flush()
    await recordings.add(recording_of(B, 32))
    await step("up")
    # Back, the backlog maybe not replayed yet: these must not overtake it.
    states.changed("bob", "available", None, at(40))
    states.changed("ana", "paused", "disconnected", at(41))
    await states.flush()
    await records.close(A, [event("ended", 41, by="caller")])
    await recordings.add(recording_of(A, 42))
    await step("end")


async def spans(engine: AsyncEngine) -> list[Span]:
    span = AgentStateSpanRow
    query = select(span.agent, span.state, span.reason, span.node, span.started_at, span.ended_at, span.seen_at)
    async with engine.connect() as connection:
        found = (await connection.execute(query.order_by(span.id))).all()
    return [(r.agent, r.state, r.reason, r.node, r.started_at, r.ended_at, r.seen_at) for r in found]


Stored = tuple[list[Span], list[Recording | None], list[CallRecord | None]]


async def stored(engine: AsyncEngine, records: CallRecords, recordings: Recordings) -> Stored:
    return (
        await spans(engine),
        [await recordings.get(call_id) for call_id in (A, B)],
        [await records.get_call(call_id) for call_id in (A, B)],
    )


@pytest.fixture
async def reference(backend: str, tmp_path: Path) -> AsyncIterator[Stored]:
    """The same work on a database that never went away."""
    async with fresh_database(backend, tmp_path / "reference") as url:
        engine = create_engine(url)
        await migrate(engine)

        async def nothing(_: str) -> None:
            return None

        async with CallRecords(engine) as records, AgentStateLog(engine, "node-a") as states:
            recordings = Recordings(engine)
            await worked(records, states, recordings, nothing)
            yield await stored(engine, records, recordings)
        await engine.dispose()


async def run_through_outage(
    engine: AsyncEngine, journal_dir: Path, on_step: Callable[[str, Outage, CallRecords], None]
) -> tuple[Stored, CallRecords]:
    records = CallRecords(engine, disk_journal=DiskJournal(journal_dir))
    await records.start()
    assert records.outage is not None
    # Slower retries than the default: the writes right after recovery surely find the backlog there.
    records.outage.retry_min_s = records.outage.retry_max_s = 1.0
    outage = Outage(records.journal.sync_engine)
    states = AgentStateLog(engine, "node-a", journal=records.journal)
    await states.start()
    recordings = Recordings(engine, records.journal)

    async def step(name: str) -> None:
        on_step(name, outage, records)

    try:
        await worked(records, states, recordings, step)
        await wait_until(lambda: not records.buffering)
        after = await stored(engine, records, recordings)
    finally:
        await states.stop()
        await records.stop()
        outage.remove()
    assert states.dropped == 0
    return after, records


async def test_agent_states_and_recordings_are_buffered_and_replayed_in_order(
    engine: AsyncEngine, tmp_path: Path, reference: Stored
) -> None:
    journal_dir = tmp_path / "journal"
    seen: dict[str, Any] = {}

    def on_step(name: str, outage: Outage, records: CallRecords) -> None:
        if name == "down":
            outage.down = True
        elif name == "up":
            assert records.buffering
            seen["buffered_while_down"] = records.buffered
            seen["lines"] = len((journal_dir / JOURNAL_FILE).read_bytes().splitlines())
            outage.down = False
        elif name == "end":
            seen["buffered_at_end"] = records.buffered

    after, records = await run_through_outage(engine, journal_dir, on_step)
    assert records.outage is not None
    stats = records.outage.stats
    # 3 state batches, append a, open b, close b, b's recording.
    assert seen["buffered_while_down"] == seen["lines"] == 7
    assert stats.buffered == stats.replayed >= 7
    assert stats.refused == 0
    assert after == reference, "the same spans, recordings and timelines as without the outage"
    span_rows, rows, _ = after
    assert [(s[0], s[1]) for s in span_rows] == [
        ("ana", "paused"),
        ("ana", "available"),
        ("ana", "ringing"),
        ("ana", "on_call"),
        ("bob", "available"),
        ("bob", "on_call"),
        ("bob", "wrap_up"),
        ("bob", "available"),
    ]
    assert all(row is not None for row in rows)
    assert not (journal_dir / JOURNAL_FILE).exists()
    print(
        f"\noutage: {seen['buffered_while_down']} writes buffered while down "
        f"({seen['buffered_at_end']} by the end of the work), {stats.replayed} replayed"
    )


async def test_state_changes_committed_though_reported_lost_are_not_stored_twice(
    engine: AsyncEngine, tmp_path: Path, reference: Stored
) -> None:
    def on_step(name: str, outage: Outage, records: CallRecords) -> None:
        if name == "down":
            # The first state batch commits, then its connection "breaks": buffered, and replayed over itself.
            outage.commit_then_fail = 1
        elif name == "up":
            assert records.buffering

    after, records = await run_through_outage(engine, tmp_path / "journal", on_step)
    assert records.outage is not None
    assert records.outage.stats.buffered >= 1
    assert after == reference


async def test_kill9_during_an_outage_then_the_next_start_replays_spans_and_recording(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    call_id = "d" * 32
    status, line, printed = await kill9_once_buffered(
        HERE / "side_outage_child.py", database_url, str(journal_dir), call_id, "node-k", cwd=REPO
    )
    assert status == -signal.SIGKILL
    # Ringing and on_call (one batch), the checkpoint, the recording's row.
    assert line == b"buffered 3\n", printed

    recordings = Recordings(engine)
    assert [s[1] for s in await spans(engine)] == ["available"], "only the first change got through"
    assert await recordings.get(call_id) is None

    records = CallRecords(engine, disk_journal=DiskJournal(journal_dir))
    async with records:
        assert records.outage is not None
        assert records.buffered == 0, "start replayed what the last run left"
        assert records.outage.stats.replayed == 3
        states = AgentStateLog(engine, "node-k", journal=records.journal)
        async with states:
            assert await states.recover() == 1
        found = await spans(engine)
        row = await recordings.get(call_id)
    assert found == [
        ("ana", "available", None, "node-k", at(0), at(5), at(0)),
        ("ana", "ringing", None, "node-k", at(5), at(6), at(5)),
        # Closed at its last confirmation, the buffered checkpoint.
        ("ana", "on_call", None, "node-k", at(6), at(9), at(9)),
    ]
    assert row is not None
    assert (row.file, row.size, row.stored_at) == (f"2026/03/01/{call_id}.ogg", 1234, at(8))
    assert not (journal_dir / JOURNAL_FILE).exists()


async def test_what_users_ask_for_is_refused_as_unavailable_not_failed(
    engine: AsyncEngine, records: CallRecords
) -> None:
    call = new_call(id=A)
    await records.open_call(call, [event("arrived", 0)])
    outage = Outage(records.journal.sync_engine if engine.dialect.name == "postgresql" else engine.sync_engine)
    outage.down = True
    recordings = Recordings(engine)
    access = RecordingAccess(A, "acme", "sam", "supervisor", at(5), True, "whole file")
    saved = SavedOverflow("sales", True, {}, at(5), "acme-admin")
    change = OverflowChange("sales", "acme", "acme-admin", at(5), "switch", {}, {"switched_on": True})
    attempts: list[Callable[[], Awaitable[Any]]] = [
        lambda: CallScores(engine).add(CallScore(A, "sam", 4, "fine", at(5))),
        lambda: CallScores(engine).latest([A]),
        lambda: recordings.get(A),
        lambda: recordings.audit(access),
        lambda: recordings.accesses(call_id=A),
        lambda: recordings.mark_purged(A, at(5)),
        lambda: OverflowSettings(engine).save(saved, change),
        lambda: OverflowSettings(engine).audit({"acme"}),
        lambda: state_spans(engine, since=at(0), until=at(10)),
    ]
    try:
        for attempt in attempts:
            with pytest.raises(DatabaseUnavailable):
                await attempt()
    finally:
        outage.down = False
        outage.remove()
    assert outage.refused >= len(attempts)


class _Desk:
    """Only what scoring asks of the supervision service: the supervisor's clients."""

    def scope(self, login: str) -> frozenset[str]:
        return frozenset({"acme"})


async def test_a_score_or_a_playback_during_an_outage_is_a_503_not_a_500(
    engine: AsyncEngine, records: CallRecords, tmp_path: Path
) -> None:
    call = new_call(id=A)
    await records.open_call(call, [event("arrived", 0)])
    await records.close(A, [event("ended", 5, by="caller")])
    await Recordings(engine).add(recording_of(A, 6))

    async def health() -> dict[str, Any]:
        return {"status": "ready"}

    tenant = load_tenant(demo_tenant_path())
    app = create_app(WebContext(records, Authenticator(tenant), health, health))
    add_supervisor_routes(app, supervision=_Desk())  # type: ignore[arg-type]
    recordings = CallRecordings(tmp_path, Recordings(engine), lambda *_: None, tenant, SystemClock())
    add_recording_routes(app, recordings)
    sam = {"Authorization": "Basic " + base64.b64encode(b"sam:sam-demo").decode()}
    outage = Outage(records.journal.sync_engine if engine.dialect.name == "postgresql" else engine.sync_engine)
    async with TestClient(TestServer(app)) as http:
        outage.down = True
        try:
            score = await http.post(f"/api/supervisor/calls/{A}/score", json={"score": 4}, headers=sam)
            play = await http.get(f"/api/recordings/{A}", headers=sam)
            answers = [(score.status, await score.json()), (play.status, await play.json())]
            retry_after = {score.headers.get("Retry-After"), play.headers.get("Retry-After")}
        finally:
            outage.down = False
            outage.remove()
    for status, body in answers:
        assert status == 503, body
        assert "unavailable" in body["error"]
    assert retry_after == {"5"}
    assert await Recordings(engine).accesses(call_id=A) == [], "nothing audited, nothing played"
