"""The call record's writes, each run by the journal inside a batch transaction.

Statements are built once, with bind parameters: building a SQLAlchemy
statement costs several times more than executing a cached one, and a
batch runs hundreds of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from dialplan.timeline import TERMINAL_KINDS, CallSummary, EventKind, TimelineEvent, summarize
from store.models import CallEventRow, CallRow

EventRow = Mapping[str, Any]


class UnknownCall(LookupError):
    def __init__(self, call_id: str) -> None:
        super().__init__(f"no call record {call_id!r}")
        self.call_id = call_id


class CallClosed(RuntimeError):
    def __init__(self, call_id: str) -> None:
        super().__init__(f"call {call_id!r} is closed: its timeline is final")
        self.call_id = call_id


# FOR UPDATE serialises writers of one call across processes on PostgreSQL (and
# returns the row as the previous writer committed it); on SQLite the write lock
# taken at BEGIN IMMEDIATE already serialises every writer.
_LOCK_CALL = (
    select(CallRow.outcome, CallRow.last_mono, CallRow.event_count)
    .where(CallRow.id == bindparam("call_id"))
    .with_for_update()
)
_CALL_EXISTS = select(CallRow.id).where(CallRow.id == bindparam("call_id"))
_INSERT_CALL = insert(CallRow)
_INSERT_EVENTS = insert(CallEventRow)
_TIMELINE = (
    select(CallEventRow.kind, CallEventRow.at, CallEventRow.mono, CallEventRow.data)
    .where(CallEventRow.call_id == bindparam("call_id"))
    .order_by(CallEventRow.seq)
)
# Columns to set come from the parameters given with each execution.
_UPDATE_CALL = update(CallRow).where(CallRow.id == bindparam("target_id"))
_HEARTBEAT = (
    update(CallRow)
    .where(
        CallRow.id.in_(bindparam("ids", expanding=True)),
        CallRow.outcome.is_(None),
        CallRow.last_mono < bindparam("mono"),
    )
    .values(last_mono=bindparam("mono"), last_alive_at=bindparam("alive_at"))
)


def open_call(connection: Connection, values: Mapping[str, Any], events: Sequence[EventRow]) -> None:
    connection.execute(_INSERT_CALL, [dict(values)])
    _insert_events(connection, values["id"], 0, events)


def append(connection: Connection, call_id: str, events: Sequence[EventRow]) -> None:
    call = _lock_call(connection, call_id)
    if call.outcome is not None:
        raise CallClosed(call_id)
    _insert_events(connection, call_id, call.event_count, events)
    values: dict[str, Any] = {"event_count": call.event_count + len(events)}
    latest = max(events, key=lambda row: float(row["mono"]))
    if latest["mono"] > call.last_mono:
        values.update(last_mono=latest["mono"], last_alive_at=latest["at"])
    _set(connection, call_id, **values)


def append_after_close(connection: Connection, call_id: str, events: Sequence[EventRow]) -> None:
    """Events that come after a call's end (its agent's wrap-up): only on a closed call."""
    call = _lock_call(connection, call_id)
    if call.outcome is None:
        raise ValueError(f"call {call_id!r} is still open: its wrap-up can't have ended")
    _insert_events(connection, call_id, call.event_count, events)
    summary = summarize(_timeline(connection, call_id))
    _set(
        connection,
        call_id,
        event_count=call.event_count + len(events),
        wrap_up_ms=_millis(summary.wrap_up_s) if summary.wrap_up_s else None,
    )


def close(connection: Connection, call_id: str, events: Sequence[EventRow]) -> CallSummary:
    call = _lock_call(connection, call_id)
    if call.outcome is not None:
        return summarize(_timeline(connection, call_id))
    return _close(connection, call_id, call.event_count, call.last_mono, events)


def heartbeat(connection: Connection, call_ids: Sequence[str], at: datetime, mono: float) -> None:
    connection.execute(_HEARTBEAT, {"ids": list(call_ids), "mono": mono, "alive_at": at})


def close_interrupted(
    connection: Connection,
    *,
    call_ids: Sequence[str] | None,
    worker: int | None,
    node: str | None,
    reason: str,
) -> list[str]:
    query = select(CallRow.id, CallRow.last_mono, CallRow.last_alive_at, CallRow.event_count).where(
        CallRow.outcome.is_(None)
    )
    if call_ids is not None:
        query = query.where(CallRow.id.in_(call_ids))
    if worker is not None:
        query = query.where(CallRow.worker == worker)
    if node is not None:
        query = query.where(CallRow.node == node)
    found = connection.execute(query.order_by(CallRow.id).with_for_update()).all()
    for call in found:
        # The call ends when it was last known alive, not now.
        interrupted = {
            "kind": EventKind.INTERRUPTED.value,
            "at": call.last_alive_at,
            "mono": call.last_mono,
            "data": {"reason": reason},
        }
        _close(connection, call.id, call.event_count, call.last_mono, [interrupted])
    return [call.id for call in found]


# --- replays -----------------------------------------------------------------------------------
# A write buffered because the database went away may have committed all the
# same (the connection broke after COMMIT reached the server): replaying it must
# not store it twice. Every write buffered after it is replayed after it, so if
# it committed, nothing of its call came after it: its events are the tail.


def replay_open_call(connection: Connection, values: Mapping[str, Any], events: Sequence[EventRow]) -> None:
    if connection.execute(_CALL_EXISTS, {"call_id": values["id"]}).first() is None:
        open_call(connection, values, events)


def replay_append(connection: Connection, call_id: str, events: Sequence[EventRow]) -> None:
    if not _stored_already(connection, call_id, events):
        append(connection, call_id, events)


def replay_append_after_close(connection: Connection, call_id: str, events: Sequence[EventRow]) -> None:
    if not _stored_already(connection, call_id, events):
        append_after_close(connection, call_id, events)


def _stored_already(connection: Connection, call_id: str, events: Sequence[EventRow]) -> bool:
    """Whether these events are in the call's timeline, in a row.

    Anywhere, not only at its end: one batch may hold several appends to the
    call, and when it committed though reported lost, each of them is
    replayed with the later ones already stored behind it. Two real events
    never share their kind, instant and data, so a match is this write.
    """
    timeline = [(stored.kind, stored.mono, stored.data) for stored in _timeline(connection, call_id)]
    wanted = [(row["kind"], row["mono"], row["data"]) for row in events]
    return any(timeline[start : start + len(wanted)] == wanted for start in range(len(timeline) - len(wanted) + 1))


def _lock_call(connection: Connection, call_id: str) -> Row[str | None, float, int]:
    call = connection.execute(_LOCK_CALL, {"call_id": call_id}).one_or_none()
    if call is None:
        raise UnknownCall(call_id)
    return call


def _insert_events(connection: Connection, call_id: str, first_seq: int, events: Sequence[EventRow]) -> None:
    connection.execute(
        _INSERT_EVENTS, [{**row, "call_id": call_id, "seq": first_seq + n} for n, row in enumerate(events)]
    )


def _timeline(connection: Connection, call_id: str) -> list[TimelineEvent]:
    return [
        TimelineEvent(kind=row.kind, at=row.at, mono=row.mono, data=row.data)
        for row in connection.execute(_TIMELINE, {"call_id": call_id})
    ]


def _close(
    connection: Connection, call_id: str, event_count: int, last_mono: float, events: Sequence[EventRow]
) -> CallSummary:
    _insert_events(connection, call_id, event_count, events)
    # Summarise what is stored, as stored: the figures must be reproducible from the database.
    timeline = _timeline(connection, call_id)
    summary = summarize(timeline)
    if summary.outcome is None:
        raise RuntimeError(f"call {call_id!r}: timeline has no terminal event after close")
    terminal = next(e for e in timeline if e.kind in TERMINAL_KINDS)
    latest = max(timeline, key=lambda e: e.mono)
    values: dict[str, Any] = {
        "outcome": summary.outcome.value,
        "sip_status": summary.sip_status,
        "ended_by": summary.ended_by,
        "answered_by": summary.answered_by,
        "ended_at": terminal.at,
        "duration_ms": _millis(summary.duration_s),
        "queue_wait_ms": _millis(summary.queue_wait_s),
        "ring_ms": _millis(summary.ring_s),
        "talk_ms": _millis(summary.talk_s),
        "hold_ms": _millis(summary.hold_s),
        "wrap_up_ms": _millis(summary.wrap_up_s) if summary.wrap_up_s else None,
        "event_count": event_count + len(events),
    }
    if latest.mono > last_mono:
        values.update(last_mono=latest.mono, last_alive_at=latest.at)
    _set(connection, call_id, **values)
    return summary


def _set(connection: Connection, call_id: str, **values: Any) -> None:
    connection.execute(_UPDATE_CALL, {"target_id": call_id, **values})


def _millis(seconds: float) -> int:
    return round(seconds * 1000)
