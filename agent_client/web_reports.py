"""Reports over HTTP: per client, queue or agent, by day or hour; JSON or CSV.

Tenant admins see every client, supervisors the clients they supervise,
client admins their own client; agents see none.

Per agent, rows also carry `staffed_s` and `occupancy` (dialplan.reports);
per client or queue these are null, since an agent's time isn't split by
client. A scoped viewer sees them for the agents who answered the scope's
calls or serve one of its clients; an agent's figures cover all their work.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, time, timedelta

from aiohttp import web

from agent_client.web_agent import STATIC_DIR, session_of
from agent_client.web_app import CONTEXT, json_response, principal_of, query_date
from agent_client.web_auth import Role
from dialplan.reports import COLUMNS, GROUPS, PERIODS, ReportCall, StateSpan, report
from dialplan.tenant import Tenant
from store.agent_states import state_spans
from store.report_calls import report_calls

REPORT_TENANT = web.AppKey("report_tenant", Tenant)
MAX_DAYS = 92


async def reports(request: web.Request) -> web.StreamResponse:
    principal = await principal_of(request)
    if principal.role is Role.AGENT:
        return json_response({"error": "reports are for supervisors, client admins and tenant admins"}, 403)
    query = request.query
    group, period = query.get("group", "client"), query.get("by", "day")
    if group not in GROUPS:
        return _bad("group", f"group: one of {', '.join(GROUPS)}")
    if period not in PERIODS:
        return _bad("by", f"by: one of {', '.join(PERIODS)}")
    first = query_date(request, "from", datetime.now(UTC).date())
    last = query_date(request, "to", first)
    if last < first or (last - first).days > MAX_DAYS:
        return _bad("to", f"to: not before from, and at most {MAX_DAYS} days after it")
    try:
        threshold = float(query.get("threshold_s", "20"))
    except ValueError:
        threshold = math.nan
    if not 0 < threshold <= 3600:
        return _bad("threshold_s", "threshold_s: seconds, more than 0 and at most 3600")
    if query.get("format", "json") not in ("json", "csv"):
        return _bad("format", "format: json or csv")
    client = query.get("client")
    scope = principal.clients
    if client is not None:
        if not principal.may_see_client(client):
            return json_response({"error": f"no access to client {client!r}"}, 403)
        scope = frozenset({client})
    records = request.app[CONTEXT].records
    since = datetime.combine(first, time(), UTC)
    until = datetime.combine(last + timedelta(days=1), time(), UTC)
    calls = await report_calls(records, since=since, until=until, client_ids=scope)
    spans: list[StateSpan] = []
    if group == "agent":
        logins = _agents_in_scope(request.app.get(REPORT_TENANT), scope, calls)
        spans = await state_spans(records.engine, since=since, until=until, logins=logins, now=datetime.now(UTC))
    rows = report(calls, group=group, period=period, threshold_s=threshold, spans=spans)
    if query.get("format") == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")
    return json_response(
        {"group": group, "by": period, "from": first.isoformat(), "to": last.isoformat(), "rows": rows}
    )


def _bad(field: str, message: str) -> web.Response:
    return json_response({"error": message, "field": field}, 400)


def _agents_in_scope(
    tenant: Tenant | None, scope: frozenset[str] | None, calls: list[ReportCall]
) -> frozenset[str] | None:
    """Whose staffed time the viewer sees: everyone's with the whole tenant in scope (None)."""
    if scope is None:
        return None
    found = {call.agent for call in calls if call.agent is not None}
    if tenant is not None:
        found |= {login for login, agent in tenant.agents.items() if any(s.client_id in scope for s in agent.serves)}
    return frozenset(found)


async def page(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is None:
        raise web.HTTPFound("/login")
    if session.principal.role is Role.AGENT:
        raise web.HTTPForbidden(text="Reports are for supervisors, client admins and tenant admins.")
    return web.FileResponse(STATIC_DIR / "reports.html", headers={"Cache-Control": "no-store"})


def add_report_routes(app: web.Application, tenant: Tenant | None = None) -> None:
    """`tenant`: who serves which client, so scoped viewers see the staffed time of agents without calls."""
    if tenant is not None:
        app[REPORT_TENANT] = tenant
    app.router.add_get("/reports", page)
    app.router.add_get("/api/reports", reports)
