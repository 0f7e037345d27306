"""The calls a report counts, read from the records in pages, each with the queue it waited in."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select

from dialplan.reports import ReportCall
from dialplan.timeline import EventKind
from store.models import CallEventRow
from store.records import CallRecords
from store.unreachable import needs_database

PAGE = 1000


async def report_calls(
    records: CallRecords, *, since: datetime, until: datetime, client_ids: Collection[str] | None
) -> list[ReportCall]:
    found: list[ReportCall] = []
    offset = 0
    while True:
        page = await records.list_calls(since=since, until=until, client_ids=client_ids, limit=PAGE, offset=offset)
        queues = await _queues(records, [r.id for r in page if r.outcome not in (None, "rejected")])
        for r in page:
            if r.client_id is None or r.outcome is None:
                continue
            found.append(
                ReportCall(
                    client_id=r.client_id,
                    queue_id=queues.get(r.id),
                    agent=r.answered_by,
                    arrived_at=r.arrived_at,
                    outcome=r.outcome,
                    wait_s=(r.queue_wait_ms or 0) / 1000,
                    talk_s=(r.talk_ms or 0) / 1000,
                    hold_s=(r.hold_ms or 0) / 1000,
                    wrap_up_s=(r.wrap_up_ms or 0) / 1000,
                )
            )
        if len(page) < PAGE:
            return found
        offset += PAGE


async def _queues(records: CallRecords, call_ids: list[str]) -> dict[str, str]:
    """Each call's queue, from its `queued` event: one query for the whole page."""
    if not call_ids:
        return {}
    event = CallEventRow
    query = select(event.call_id, event.data).where(event.kind == EventKind.QUEUED.value, event.call_id.in_(call_ids))
    with needs_database("queues of calls"):
        async with records.engine.connect() as connection:
            return {
                call_id: str(data["queue"])
                for call_id, data in await connection.execute(query)
                if isinstance(data, dict) and data.get("queue")
            }
