"""The control process's HTTP side: health, the call records API, and what every route shares.

Every route, its roles and its scope are listed in agent_client/web_rbac.py;
the handlers check them, and tests/web/test_rbac_matrix.py checks the handlers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from aiohttp import web

from agent_client.web_agent import SESSIONS
from agent_client.web_auth import Authenticator, Principal, Role, Throttled
from agent_client.web_csrf import csrf
from agent_client.web_edge import EDGE, Edge, edge_of, source_of
from agent_client.web_sessions import COOKIE
from store.records import CallRecords
from store.unreachable import DatabaseUnavailable

Probe = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class WebContext:
    records: CallRecords
    authenticator: Authenticator
    health: Probe
    # Each worker's pool status and live media counters (calls, ports, players, threads).
    workers: Probe


CONTEXT = web.AppKey("context", WebContext)
MAX_PAGE = 1000
# Dates and times outside these years are typos or probes; past them, date arithmetic overflows.
FIRST_YEAR, LAST_YEAR = 1970, 9000


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


DATABASE_AWAY = "the database is unavailable: try again shortly; calls go on and their records are kept"


def _problem(status: int, message: str, **fields: object) -> web.Response:
    return json_response({"error": message, **fields}, status=status)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return _problem(exc.status, exc.reason)
        raise
    except DatabaseUnavailable:
        # What calls and agents write is buffered on disk while the database is away; what a
        # person asks for (a read, a setting, a score) needs it, and is theirs to retry.
        response = _problem(503, DATABASE_AWAY)
        response.headers["Retry-After"] = "5"
        return response


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # No page of the bridge is to be framed by another site (clickjacking the softphone).
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if edge_of(request.app).secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


async def principal_of(request: web.Request) -> Principal:
    """The signed-in browser session's principal, or HTTP Basic credentials' (scripts)."""
    if SESSIONS in request.app:
        session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
        if session is not None:
            return session.principal
    ctx = request.app[CONTEXT]
    principal = await ctx.authenticator.authenticate(request.headers.get("Authorization"), source_of(request))
    if isinstance(principal, Throttled):
        wait = principal.retry_after_s
        raise web.HTTPTooManyRequests(
            headers={"Retry-After": str(wait)},
            text=json.dumps({"error": f"Too many failed sign-ins. Try again in {wait} s.", "retry_after_s": wait}),
            content_type="application/json",
        )
    if principal is None:
        raise web.HTTPUnauthorized(
            headers={"WWW-Authenticate": 'Basic realm="hotline-bridge", charset="UTF-8"'},
            text=json.dumps({"error": "authentication required"}),
            content_type="application/json",
        )
    return principal


def bad_request(field: str, message: str) -> web.HTTPBadRequest:
    """A 400 naming the field at fault, to raise from a handler."""
    return web.HTTPBadRequest(
        text=json.dumps({"error": message, "field": field}, ensure_ascii=False), content_type="application/json"
    )


def query_date(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise bad_request(name, f"{name}: expected a date such as 2026-11-23") from None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise bad_request(name, f"{name}: expected a date between {FIRST_YEAR} and {LAST_YEAR}")
    return value


def _parse_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(name, f"{name}: expected an ISO-8601 date-time, got {raw!r}") from None
    if value.tzinfo is None:
        raise bad_request(name, f"{name}: give a time zone, e.g. {raw}Z")
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise bad_request(name, f"{name}: expected a time between {FIRST_YEAR} and {LAST_YEAR}")
    return value


def _parse_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise bad_request(name, f"{name}: expected a whole number {low}-{high}, got {raw!r}")
    return value


async def _records_viewer(request: web.Request) -> Principal:
    principal = await principal_of(request)
    if principal.role is Role.AGENT:
        raise web.HTTPForbidden(
            text=json.dumps({"error": "call records are for supervisors, client admins and tenant admins"}),
            content_type="application/json",
        )
    return principal


async def list_calls(request: web.Request) -> web.Response:
    principal = await _records_viewer(request)
    ctx = request.app[CONTEXT]
    client = request.query.get("client")
    scope = principal.clients
    if client is not None:
        if not principal.may_see_client(client):
            return _problem(403, f"no access to client {client!r}")
        scope = frozenset({client})
    records = await ctx.records.list_calls(
        since=_parse_time(request, "since"),
        until=_parse_time(request, "until"),
        client_ids=scope,
        outcome=request.query.get("outcome"),
        limit=_parse_int(request, "limit", 100, 1, MAX_PAGE),
        offset=_parse_int(request, "offset", 0, 0, 10_000_000),
    )
    return json_response({"calls": [record.to_json() for record in records]})


async def get_call(request: web.Request) -> web.Response:
    principal = await _records_viewer(request)
    record = await request.app[CONTEXT].records.get_call(request.match_info["call_id"])
    # Out of scope and absent look the same: ids are not to be probed.
    if record is None or not principal.may_see_client(record.client_id):
        return _problem(404, "no such call")
    return json_response(record.to_json())


async def list_workers(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    if principal.role is not Role.ADMIN:
        return _problem(403, "workers are visible to tenant admins only")
    return json_response(await request.app[CONTEXT].workers())


async def healthz(request: web.Request) -> web.Response:
    report = await request.app[CONTEXT].health()
    return json_response(report, status=200 if report.get("status") == "ready" else 503)


def create_app(context: WebContext, edge: Edge | None = None) -> web.Application:
    app = web.Application(middlewares=[_errors, csrf], client_max_size=64 * 1024)
    app[CONTEXT] = context
    app[EDGE] = edge or Edge()
    app.on_response_prepare.append(_headers)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_id}", get_call)
    app.router.add_get("/api/workers", list_workers)
    return app
