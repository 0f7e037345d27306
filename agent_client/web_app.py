"""The control process's HTTP side: health and the call records API."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from agent_client.web_agent import SESSIONS
from agent_client.web_auth import Authenticator, Principal, Role
from agent_client.web_sessions import COOKIE
from store.records import CallRecords

Probe = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class WebContext:
    records: CallRecords
    authenticator: Authenticator
    health: Probe
    # Each worker's pool status and live media counters (calls, ports, players, threads).
    workers: Probe


CONTEXT = web.AppKey("context", WebContext)
PRINCIPAL_KEY = "principal"
MAX_PAGE = 1000


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


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


async def principal_of(request: web.Request) -> Principal:
    """The signed-in browser session's principal, or HTTP Basic credentials' (scripts)."""
    if SESSIONS in request.app:
        session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
        if session is not None:
            return session.principal
    ctx = request.app[CONTEXT]
    principal = await ctx.authenticator.authenticate(request.headers.get("Authorization"))
    if principal is None:
        raise web.HTTPUnauthorized(
            headers={"WWW-Authenticate": 'Basic realm="hotline-bridge", charset="UTF-8"'},
            text=json.dumps({"error": "authentication required"}),
            content_type="application/json",
        )
    return principal


def _parse_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: expected an ISO-8601 date-time, got {raw!r}", "field": name}),
            content_type="application/json",
        ) from None
    if value.tzinfo is None:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: give a time zone, e.g. {raw}Z", "field": name}),
            content_type="application/json",
        )
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
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: expected a whole number {low}-{high}, got {raw!r}", "field": name}),
            content_type="application/json",
        )
    return value


async def list_calls(request: web.Request) -> web.Response:
    principal = await principal_of(request)
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
    principal = await principal_of(request)
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


def create_app(context: WebContext) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    app[CONTEXT] = context
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_id}", get_call)
    app.router.add_get("/api/workers", list_workers)
    return app
