"""Recordings on both backends: stored after the call, listed, audited, purged after retention, recovered after a crash."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from audio import AGENT_HZ, CALLER_HZ, write_tone_wav
from config.tenant_file import demo_tenant_path, load_tenant
from dialplan.clock import ManualClock
from dialplan.timeline import EventKind, TimelineEvent
from harness.records import T0, answered_call
from store.recordings import RecordingAccess, Recordings
from store.records import CallRecords
from telephony.call_recordings import CallRecordings


class Timeline:
    def __init__(self) -> None:
        self.events: dict[str, list[TimelineEvent]] = {}

    def record(self, call_id: str, events: Any) -> None:
        self.events.setdefault(call_id, []).extend(events)


def sides(service: CallRecordings, call_id: str, started_by: str = "policy") -> Any:
    capture = service.capture(call_id, "acme", started_by)
    capture.caller.parent.mkdir(parents=True, exist_ok=True)
    write_tone_wav(capture.caller, CALLER_HZ, 3.0)
    write_tone_wav(capture.agent, AGENT_HZ, 3.0)
    return capture


async def test_a_recording_is_stored_audited_and_purged_when_its_retention_ends(
    records: CallRecords, tmp_path: Path
) -> None:
    clock = ManualClock(T0 + timedelta(hours=1))
    timeline, store = Timeline(), Recordings(records.engine)
    service = CallRecordings(tmp_path, store, timeline.record, load_tenant(demo_tenant_path()), clock, settle_s=0)
    call_id = await answered_call(records, 1, [("alice", 3.0)])
    capture = await asyncio.to_thread(sides, service, call_id)

    stored = await service.finish(capture)

    assert stored is not None
    assert await store.get(call_id) == stored
    assert (stored.duration_ms, stored.client_id, stored.media_type) == (3000, "acme", "audio/ogg")
    assert stored.expires_at == clock.now() + timedelta(days=90), "acme keeps the default 90 days"
    assert service.path(stored).is_file()
    assert not capture.caller.exists()
    assert [e.kind for e in timeline.events[call_id]] == [EventKind.VOICE_ANALYSED, EventKind.RECORDING_STORED]
    day = T0.replace(hour=0)
    assert [r.call_id for r in await store.listed(since=day, until=day + timedelta(days=1), client_ids={"acme"})] == [
        call_id
    ]
    assert await store.listed(since=day, until=day + timedelta(days=1), client_ids={"globex"}) == []

    for n, (who, granted) in enumerate((("sam", True), ("olga", False), ("alice", False))):
        at = clock.now() + timedelta(seconds=n)
        await store.audit(RecordingAccess(call_id, "acme", who, "supervisor", at, granted, "bytes=0-"))
    audit = await store.accesses(call_id=call_id)
    assert [(a.actor, a.granted) for a in audit] == [("alice", False), ("olga", False), ("sam", True)]
    assert await store.accesses(client_ids={"globex"}) == []

    clock.advance(90 * 86400 - 1)
    assert await service.purge() == 0
    clock.advance(1)
    assert await service.purge() == 1
    assert not service.path(stored).exists()
    purged = await store.get(call_id)
    assert purged is not None
    assert purged.purged_at == clock.now()
    assert await service.purge() == 0, "a purged recording is not purged again"


async def test_sides_left_by_a_crash_are_stored_at_the_next_start(records: CallRecords, tmp_path: Path) -> None:
    clock = ManualClock(T0 + timedelta(hours=1))
    timeline, store = Timeline(), Recordings(records.engine)
    service = CallRecordings(tmp_path, store, timeline.record, load_tenant(demo_tenant_path()), clock, settle_s=0)
    call_id = await answered_call(records, 2, [("alice", 3.0)], close=False)
    # As the dispatcher records a supervisor's on-demand start, during the call.
    await records.append(call_id, [TimelineEvent(EventKind.RECORDING_STARTED, T0, 0.0, {"by": "sam"})])
    capture = await asyncio.to_thread(sides, service, call_id, "unknown")
    orphan = await asyncio.to_thread(sides, service, "nosuchcall0000000000000000000000")

    await records.close(call_id, [TimelineEvent(EventKind.INTERRUPTED, T0 + timedelta(minutes=3), 2300.0)])
    assert await service.recover(records) == 1

    stored = await store.get(call_id)
    assert stored is not None
    assert stored.started_by == "sam", "who started it is read back from the call's timeline"
    assert service.path(stored).is_file()
    assert not capture.caller.exists()
    assert orphan.caller.exists(), "sides of a call with no record are left for a person"
    assert await service.recover(records) == 0
