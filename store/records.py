"""The authoritative record of every call: its row, its timeline, the figures derived from it.

Callers stamp events themselves (UTC ``at`` and host-monotonic ``mono``);
nothing here reads a clock. Every write goes through the journal, so an
awaited write is committed. A call is open until ``close`` (or
``close_interrupted``) appends its terminal event and stores the summary:
``outcome IS NULL`` exactly while the timeline has no terminal event.

Given a disk journal, the records outlive a database outage: a write that
fails because the database is unreachable, and every write after it, is
fsynced to the journal instead and replayed in order once the database is
back (store/outage_buffer.py). Such a write's caller is answered from what
this process knows: `close` summarises the timeline kept in memory
(store/open_timelines.py), `close_interrupted` names the matching calls it
opened. Writes the database would refuse (an unknown or closed call) are then
refused at replay, logged and set aside, not raised to their caller.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialplan.timeline import AFTER_CLOSE_KINDS, TERMINAL_KINDS, CallSummary, TimelineEvent
from store.call_record import CallRecord, NewCall
from store.disk_journal import DiskJournal
from store.journal import Journal
from store.models import CallEventRow, CallRow
from store.open_timelines import OpenTimelines, SummaryUnavailable, summary_of
from store.outage_buffer import OutageBuffer
from store.record_ops import RecordWrite
from store.record_writes import CallClosed, UnknownCall
from store.unreachable import DatabaseUnavailable, needs_database

# What callers need comes from here, wherever it is defined.
__all__ = [
    "CallClosed",
    "CallRecord",
    "CallRecords",
    "DatabaseUnavailable",
    "NewCall",
    "SummaryUnavailable",
    "UnknownCall",
]

_CALLS = CallRow.__table__
_RECORD_COLUMNS = tuple(f.name for f in fields(CallRecord) if f.name != "events")


class CallRecords:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 256,
        max_queue: int = 4096,
        disk_journal: DiskJournal | None = None,
        write_timeout_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.outage = OutageBuffer(disk_journal) if disk_journal is not None else None
        self.journal = Journal(
            engine, max_batch=max_batch, max_queue=max_queue, fallback=self.outage, timeout_s=write_timeout_s
        )
        # Only needed to answer while buffering, so only kept when buffering is possible.
        self._timelines = OpenTimelines() if disk_journal is not None else None

    @property
    def buffering(self) -> bool:
        """Writes go to the disk journal: the database is away, or its backlog is being replayed."""
        return self.outage is not None and self.outage.active

    @property
    def buffered(self) -> int:
        """Writes in the disk journal not yet replayed."""
        return 0 if self.outage is None else self.outage.disk.pending

    async def start(self) -> None:
        """Start writing; first replay what a previous run left in the disk journal, if the database answers."""
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
        if self._timelines is not None:
            self._timelines.opened(call.id, call.worker, call.node, events)
        await self.journal.write(RecordWrite("open_call", {"values": values, "events": rows}))

    async def append(self, call_id: str, events: Sequence[TimelineEvent]) -> None:
        """Add events to an open call's timeline; its last known instant moves forward.

        Raises UnknownCall, or CallClosed once the call is closed. Terminal events go through `close`.
        """
        if not events:
            return
        _refuse_terminal(events, "append")
        rows = _event_rows(events)
        if self._timelines is not None:
            self._timelines.appended(call_id, events)
        await self.journal.write(RecordWrite("append", {"call_id": call_id, "events": rows}))

    async def after_close(self, call_id: str, events: Sequence[TimelineEvent]) -> None:
        """Add what happens after a call ended (its agent's wrap-up ending) to its closed timeline."""
        if not events:
            return
        if any(event.kind not in AFTER_CLOSE_KINDS for event in events):
            raise ValueError(f"after_close takes only {sorted(AFTER_CLOSE_KINDS)}")
        rows = _event_rows(events)
        await self.journal.write(RecordWrite("append_after_close", {"call_id": call_id, "events": rows}))

    async def close(self, call_id: str, events: Sequence[TimelineEvent]) -> CallSummary:
        """Append `events`, the last of them terminal, then store outcome, durations and ended_at.

        Closing a closed call writes nothing and returns the stored timeline's summary. While
        buffering, the summary is that of the timeline kept in memory; SummaryUnavailable (once the
        close is safe on disk) for a call this process did not open.
        """
        if not events or events[-1].kind not in TERMINAL_KINDS:
            raise ValueError("close needs events ending with ended, rejected or interrupted")
        _refuse_terminal(events[:-1], "close (before the last event)")
        rows = _event_rows(events)
        timeline = None if self._timelines is None else self._timelines.closing(call_id, events)
        summary: CallSummary = await self.journal.write(
            RecordWrite("close", {"call_id": call_id, "events": rows}, offline=lambda: summary_of(call_id, timeline))
        )
        return summary

    async def heartbeat(self, call_ids: Collection[str], at: datetime, mono: float) -> None:
        """Record that these open calls were alive at (`at`, `mono`). Never moves a call back in time."""
        _check_instant(at)
        ids = _ids(call_ids)
        if ids:
            await self.journal.write(RecordWrite("heartbeat", {"call_ids": ids, "at": at, "mono": mono}))

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
        now: after a crash, the time until the next start is nobody's work. While
        buffering, the ids are those of the matching calls this process opened.
        """
        if call_ids is None and worker is None and node is None:
            raise ValueError("close_interrupted needs call_ids, worker or node")
        ids = None if call_ids is None else _ids(call_ids)
        args = {"call_ids": ids, "worker": worker, "node": node, "reason": reason}
        known = [] if self._timelines is None else self._timelines.interrupted(ids, worker, node)
        closed: list[str] = await self.journal.write(RecordWrite("close_interrupted", args, offline=lambda: known))
        return closed

    # --- reads --------------------------------------------------------------------------------

    async def open_call_ids(self, node: str | None = None) -> list[str]:
        query = select(CallRow.id).where(CallRow.outcome.is_(None))
        if node is not None:
            query = query.where(CallRow.node == node)
        with needs_database("open calls"):
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
        with needs_database("call list"):
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
        with needs_database(f"call {call_id}"):
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
