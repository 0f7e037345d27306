"""The authoritative record of every call: its row, its timeline, the figures derived from it.

Callers stamp events themselves (UTC ``at`` and host-monotonic ``mono``);
nothing here reads a clock. Every write goes through the journal, so an
awaited write is committed. A call is open until ``close`` (or
``close_interrupted``) appends its terminal event and stores the summary:
``outcome IS NULL`` exactly while the timeline has no terminal event.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialplan.timeline import AFTER_CLOSE_KINDS, TERMINAL_KINDS, CallSummary, TimelineEvent
from store import record_writes
from store.call_record import CallRecord, NewCall
from store.journal import Journal
from store.models import CallEventRow, CallRow
from store.record_writes import CallClosed, UnknownCall

# What callers need comes from here, wherever it is defined.
__all__ = ["CallClosed", "CallRecord", "CallRecords", "NewCall", "UnknownCall"]

_CALLS = CallRow.__table__
_RECORD_COLUMNS = tuple(f.name for f in fields(CallRecord) if f.name != "events")


class CallRecords:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256, max_queue: int = 4096) -> None:
        self.engine = engine
        self.journal = Journal(engine, max_batch=max_batch, max_queue=max_queue)

    async def start(self) -> None:
        await self.journal.start()

    async def stop(self) -> None:
        """Write what is queued, then stop (writes after this raise JournalClosed)."""
        await self.journal.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- writes -------------------------------------------------------------------------------

    async def open_call(self, call: NewCall, events: Sequence[TimelineEvent]) -> None:
        """Insert the call and its first events (the first one is its arrival)."""
        if not events:
            raise ValueError("a call opens with at least its arrival event")
        _refuse_terminal(events, "open_call")
        rows = _event_rows(events)
        latest = max(events, key=lambda e: e.mono)
        values = {
            "id": call.id,
            "sip_call_id": call.sip_call_id,
            "caller": call.caller,
            "caller_display": call.caller_display,
            "did": call.did,
            "source": call.source,
            "client_id": call.client_id,
            "line_id": call.line_id,
            "worker": call.worker,
            "node": call.node,
            "arrived_at": events[0].at,
            "arrived_mono": events[0].mono,
            "last_mono": latest.mono,
            "last_alive_at": latest.at,
            "event_count": len(events),
        }
        await self.journal.write(partial(record_writes.open_call, values=values, events=rows))

    async def append(self, call_id: str, events: Sequence[TimelineEvent]) -> None:
        """Add events to an open call's timeline; its last known instant moves forward.

        Raises UnknownCall, or CallClosed once the call is closed. Terminal events go through `close`.
        """
        if not events:
            return
        _refuse_terminal(events, "append")
        rows = _event_rows(events)
        await self.journal.write(partial(record_writes.append, call_id=call_id, events=rows))

    async def after_close(self, call_id: str, events: Sequence[TimelineEvent]) -> None:
        """Add what happens after a call ended (its agent's wrap-up ending) to its closed timeline."""
        if not events:
            return
        if any(event.kind not in AFTER_CLOSE_KINDS for event in events):
            raise ValueError(f"after_close takes only {sorted(AFTER_CLOSE_KINDS)}")
        rows = _event_rows(events)
        await self.journal.write(partial(record_writes.append_after_close, call_id=call_id, events=rows))

    async def close(self, call_id: str, events: Sequence[TimelineEvent]) -> CallSummary:
        """Append `events`, the last of them terminal, then store outcome, durations and ended_at.

        Closing a closed call writes nothing and returns the stored timeline's summary.
        """
        if not events or events[-1].kind not in TERMINAL_KINDS:
            raise ValueError("close needs events ending with ended, rejected or interrupted")
        _refuse_terminal(events[:-1], "close (before the last event)")
        rows = _event_rows(events)
        return await self.journal.write(partial(record_writes.close, call_id=call_id, events=rows))

    async def heartbeat(self, call_ids: Collection[str], at: datetime, mono: float) -> None:
        """Record that these open calls were alive at (`at`, `mono`). Never moves a call back in time."""
        _check_instant(at)
        ids = _ids(call_ids)
        if ids:
            await self.journal.write(partial(record_writes.heartbeat, call_ids=ids, at=at, mono=mono))

    async def close_interrupted(
        self,
        *,
        call_ids: Collection[str] | None = None,
        worker: int | None = None,
        node: str | None = None,
        reason: str,
    ) -> list[str]:
        """Close the open calls matching every given filter as interrupted; return their ids.

        A call ends when it was last known alive (its last event or heartbeat), not
        now: after a crash, the time until the next start is nobody's work.
        """
        if call_ids is None and worker is None and node is None:
            raise ValueError("close_interrupted needs call_ids, worker or node")
        ids = None if call_ids is None else _ids(call_ids)
        return await self.journal.write(
            partial(record_writes.close_interrupted, call_ids=ids, worker=worker, node=node, reason=reason)
        )

    # --- reads --------------------------------------------------------------------------------

    async def open_call_ids(self, node: str | None = None) -> list[str]:
        query = select(CallRow.id).where(CallRow.outcome.is_(None))
        if node is not None:
            query = query.where(CallRow.node == node)
        async with self.engine.connect() as connection:
            result = await connection.execute(query.order_by(CallRow.arrived_at, CallRow.id))
            return list(result.scalars())

    async def list_calls(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        client_ids: Collection[str] | None = None,
        outcome: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[CallRecord]:
        """Calls that arrived in [since, until), newest first, without their events.

        `client_ids` None means every client; an empty collection matches nothing.
        """
        if limit < 1 or offset < 0:
            raise ValueError(f"limit must be at least 1 and offset at least 0, got {limit}, {offset}")
        clients = None if client_ids is None else _ids(client_ids)
        if clients is not None and not clients:
            return []
        query = select(_CALLS)
        if since is not None:
            query = query.where(CallRow.arrived_at >= _check_instant(since))
        if until is not None:
            query = query.where(CallRow.arrived_at < _check_instant(until))
        if clients is not None:
            query = query.where(CallRow.client_id.in_(clients))
        if outcome is not None:
            query = query.where(CallRow.outcome == outcome)
        query = query.order_by(CallRow.arrived_at.desc(), CallRow.id.desc()).limit(limit).offset(offset)
        async with self.engine.connect() as connection:
            return [_record(row) for row in await connection.execute(query)]

    async def get_call(self, call_id: str) -> CallRecord | None:
        # One statement, so the row and its events come from the same snapshot.
        query = (
            select(
                _CALLS,
                CallEventRow.kind.label("event_kind"),
                CallEventRow.at.label("event_at"),
                CallEventRow.mono.label("event_mono"),
                CallEventRow.data.label("event_data"),
            )
            .outerjoin(CallEventRow, CallEventRow.call_id == CallRow.id)
            .where(CallRow.id == call_id)
            .order_by(CallEventRow.seq)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        if not rows:
            return None
        events = tuple(
            TimelineEvent(kind=row.event_kind, at=row.event_at, mono=row.event_mono, data=row.event_data)
            for row in rows
            if row.event_kind is not None
        )
        return _record(rows[0], events)


def _event_rows(events: Iterable[TimelineEvent]) -> list[dict[str, Any]]:
    """Checked column values, so a bad event fails its caller here and not inside a batch."""
    rows = []
    for event in events:
        _check_instant(event.at)
        if not math.isfinite(event.mono):
            raise ValueError(f"event {event.kind!r}: mono must be a finite number, got {event.mono!r}")
        data = dict(event.data)
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"event {event.kind!r}: data is not plain JSON: {error}") from error
        rows.append({"kind": str(event.kind), "at": event.at, "mono": float(event.mono), "data": data})
    return rows


def _refuse_terminal(events: Iterable[TimelineEvent], where: str) -> None:
    for event in events:
        if event.kind in TERMINAL_KINDS:
            raise ValueError(f"{where}: terminal event {event.kind!r} belongs in close()")


def _check_instant(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: give a timezone-aware instant")
    return instant


def _ids(given: Collection[str]) -> list[str]:
    # A lone string is a Collection[str] too, of its characters: almost surely a mistake.
    if isinstance(given, str):
        raise TypeError(f"expected a collection of ids, got the string {given!r}")
    return list(given)


def _record(row: Row[Any], events: tuple[TimelineEvent, ...] = ()) -> CallRecord:
    columns = row._mapping
    return CallRecord(**{name: columns[name] for name in _RECORD_COLUMNS}, events=events)
