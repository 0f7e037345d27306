"""Pay statements from the call records: each answered call's agent shares, priced by the rate cards."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import datetime
from typing import TextIO

from dialplan.pay import STATEMENT_COLUMNS, PaidCall, PayRules, Statement, paid_calls, statement_rows, statements
from dialplan.tenant import Tenant
from store.call_scores import CallScores
from store.records import CallRecords

PAGE = 1000


async def agent_statements(
    records: CallRecords, tenant: Tenant, agent: str, since: datetime, until: datetime
) -> list[Statement]:
    """The agent's statements (one per currency) for calls that arrived in [since, until)."""
    overflow_lines = {line.id for line in tenant.lines if line.overflow is not None}
    paid: list[PaidCall] = []
    offset = 0
    while True:
        page = await records.list_calls(since=since, until=until, outcome="answered", limit=PAGE, offset=offset)
        for record in page:
            full = await records.get_call(record.id)
            if full is not None:
                overflow = record.line_id in overflow_lines
                paid += paid_calls(record.id, record.client_id, full.events, during_overflow=overflow)
        if len(page) < PAGE:
            break
        offset += PAGE
    scores = await CallScores(records.engine).latest({call.call_id for call in paid})
    paid = [replace(call, score=scores.get(call.call_id)) for call in paid]
    rules = {client_id: PayRules.of(card) for client_id, card in tenant.rate_cards.items()}
    zones = {client_id: client.timezone for client_id, client in tenant.clients.items()}
    return statements(agent, paid, rules, zones)


def write_statements(found: list[Statement], out: TextIO, *, as_csv: bool) -> None:
    if as_csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("agent", "currency", *STATEMENT_COLUMNS))
        for statement in found:
            for row in statement_rows(statement):
                writer.writerow((statement.agent, statement.currency, *row))
        return
    if not found:
        out.write("no paid calls in this period\n")
    for statement in found:
        rows = [STATEMENT_COLUMNS, *statement_rows(statement)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(STATEMENT_COLUMNS))]
        out.write(f"{statement.agent}, {statement.currency}\n")
        for row in rows:
            out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")
