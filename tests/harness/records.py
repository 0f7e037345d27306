"""Call records written as the bridge would, for tests that read them back (pay, reports)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dialplan.timeline import EventKind, TimelineEvent
from store.records import CallRecords, NewCall

T0 = datetime(2026, 11, 23, 10, tzinfo=UTC)


async def answered_call(records: CallRecords, n: int, parts: list[tuple[str, float]], *, close: bool = True) -> str:
    """A call to acme answered by each (agent, talk seconds) in turn; every agent but the last is lost mid-call.

    `close=False`: left open after the last agent answered and talked."""
    start = T0 + timedelta(minutes=n)
    mono = 1000.0 + n * 600
    call = NewCall(sip_call_id=f"sip-{n}", caller="0612", did="1001", source="127.0.0.1:5090", client_id="acme")
    await records.open_call(call, [TimelineEvent(EventKind.ARRIVED, start, mono)])
    events = [TimelineEvent(EventKind.QUEUED, start, mono)]
    t = 5.0
    for i, (agent, talk_s) in enumerate(parts):
        events.append(TimelineEvent(EventKind.ANSWERED, start + timedelta(seconds=t), mono + t, {"agent": agent}))
        t += talk_s
        if i < len(parts) - 1:
            events.append(TimelineEvent(EventKind.AGENT_LOST, start + timedelta(seconds=t), mono + t, {"agent": agent}))
            t += 3.0
    await records.append(call.id, events)
    if not close:
        return call.id
    await records.close(
        call.id, [TimelineEvent(EventKind.ENDED, start + timedelta(seconds=t), mono + t, {"by": "caller"})]
    )
    return call.id
