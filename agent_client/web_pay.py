"""Pay statements over HTTP: an agent's own, or anyone's for a tenant admin; JSON, CSV or a printable page."""

from __future__ import annotations

import html
import io
from datetime import UTC, date, datetime, time, timedelta

from aiohttp import web

from agent_client.web_app import CONTEXT, json_response, principal_of, query_date
from agent_client.web_auth import Role
from dialplan.pay import STATEMENT_COLUMNS, Statement, statement_rows
from dialplan.tenant import Tenant
from store.pay_statements import agent_statements, write_statements

PAY_TENANT = web.AppKey("pay_tenant", Tenant)
MAX_DAYS = 92


def _json(statement: Statement) -> dict[str, object]:
    return {
        "agent": statement.agent,
        "currency": statement.currency,
        "total": str(statement.total),
        "base": str(statement.base),
        "premiums": str(statement.premiums),
        "quality_share": str(statement.quality_share),
        "talk_s": round(statement.talk_s, 1),
        "rows": [dict(zip(STATEMENT_COLUMNS, row, strict=True)) for row in statement_rows(statement)],
    }


def _page(found: list[Statement], agent: str, first: date, last: date) -> str:
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Pay statement · {html.escape(agent)}</title>",
        "<link rel='stylesheet' href='/static/agent.css'><link rel='stylesheet' href='/static/supervisor.css'>",
        "</head><body><main class='board'><section class='card'>",
        f"<h1>Pay statement: {html.escape(agent)}, {first.isoformat()} to {last.isoformat()}</h1>",
    ]
    if not found:
        parts.append("<p data-testid='statement-empty'>No paid calls in this period.</p>")
    for statement in found:
        parts.append(f"<table class='grid' data-testid='statement-{statement.currency}'><thead><tr>")
        parts += [f"<th scope='col'>{html.escape(c)}</th>" for c in STATEMENT_COLUMNS]
        parts.append("</tr></thead><tbody>")
        for row in statement_rows(statement):
            parts.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</section></main></body></html>")
    return "".join(parts)


async def statement(request: web.Request) -> web.StreamResponse:
    principal = await principal_of(request)
    tenant = request.app[PAY_TENANT]
    agent = request.query.get("agent", principal.login)
    if principal.role is Role.AGENT and agent != principal.login:
        return json_response({"error": "an agent sees only their own pay"}, 403)
    if principal.role not in (Role.AGENT, Role.ADMIN):
        return json_response({"error": "pay statements are for agents and tenant admins"}, 403)
    if agent not in tenant.agents:
        return json_response({"error": f"no agent {agent!r}"}, 404)
    today = datetime.now(UTC).date()
    first = query_date(request, "from", today - timedelta(days=today.weekday()))
    last = query_date(request, "to", today)
    if last < first or (last - first).days > MAX_DAYS:
        return json_response({"error": f"from..to: at most {MAX_DAYS} days, to not before from", "field": "to"}, 400)
    since, until = datetime.combine(first, time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC)
    found = await agent_statements(request.app[CONTEXT].records, tenant, agent, since, until)
    kind = request.query.get("format", "json")
    if kind not in ("json", "csv", "html"):
        return json_response({"error": "format: one of json, csv, html", "field": "format"}, 400)
    if kind == "csv":
        out = io.StringIO()
        write_statements(found, out, as_csv=True)
        return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")
    if kind == "html":
        return web.Response(text=_page(found, agent, first, last), content_type="text/html", charset="utf-8")
    return json_response({"from": first.isoformat(), "to": last.isoformat(), "statements": [_json(s) for s in found]})


def add_pay_routes(app: web.Application, tenant: Tenant) -> None:
    app[PAY_TENANT] = tenant
    app.router.add_get("/api/pay/statement", statement)
