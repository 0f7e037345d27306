"""`hotline calls`: the call records, as a table or as JSON."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TextIO

from config.settings import Settings
from store.db import create_engine, migrate
from store.records import CallRecord, CallRecords

_COLUMNS = ("arrived (UTC)", "call", "client", "did", "caller", "outcome", "status", "wait s", "talk s", "total s")


def _row(record: CallRecord) -> tuple[str, ...]:
    data = record.to_json()

    def secs(key: str) -> str:
        value = data.get(key)
        return f"{value:.1f}" if isinstance(value, int | float) else "-"

    return (
        record.arrived_at.strftime("%Y-%m-%d %H:%M:%S"),
        record.id[:8],
        record.client_id or "-",
        record.did,
        record.caller,
        record.outcome or "open",
        str(record.sip_status or "-"),
        secs("queue_wait_s"),
        secs("talk_s"),
        secs("duration_s"),
    )


def format_table(records: list[CallRecord]) -> str:
    rows = [_COLUMNS, *(_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


async def print_calls(
    settings: Settings, *, since: datetime | None, client: str | None, limit: int, as_json: bool, out: TextIO
) -> int:
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        records = CallRecords(engine)
        found = await records.list_calls(
            since=since,
            until=None,
            client_ids=None if client is None else frozenset({client}),
            outcome=None,
            limit=limit,
            offset=0,
        )
    finally:
        await engine.dispose()
    if as_json:
        json.dump([r.to_json() for r in found], out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif found:
        out.write(format_table(found) + "\n")
    else:
        out.write("no calls found\n")
    return 0
