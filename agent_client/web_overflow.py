"""Weekend overflow over HTTP: what a client admin's page and scripts both use.

A client admin sees and changes only their own client's lines; another
client's line answers 404, as an unknown one does. Tenant admins see every
line. Each change is saved and audited before the answer goes back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from agent_client.web_agent import STATIC_DIR, session_of
from agent_client.web_app import json_response, principal_of
from agent_client.web_auth import Principal, Role
from dialplan.tenant import Line
from telephony.overflow_control import OverflowControl, OverflowRefused

OVERFLOW = web.AppKey("overflow", OverflowControl)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _admin(request: web.Request) -> Principal:
    principal = await principal_of(request)
    if principal.role not in (Role.CLIENT_ADMIN, Role.ADMIN):
        raise OverflowRefused("overflow is for client admins", 403)
    return principal


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OverflowRefused("expected a JSON object") from None
    if not isinstance(body, dict):
        raise OverflowRefused("expected a JSON object")
    return body


def _refusals(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except OverflowRefused as exc:
            return json_response({"error": str(exc)}, exc.status)

    return guarded


async def _line(request: web.Request) -> tuple[Principal, OverflowControl, Line]:
    """Who asks, and the line they name, if theirs (another client's is a 404, as an unknown one)."""
    principal = await _admin(request)
    control = request.app[OVERFLOW]
    return principal, control, control.line(request.match_info["line"], principal.clients)


@_refusals
async def list_lines(request: web.Request) -> web.StreamResponse:
    principal = await _admin(request)
    control = request.app[OVERFLOW]
    return json_response({"lines": [control.view(line) for line in control.lines(principal.clients)]})


@_refusals
async def get_line(request: web.Request) -> web.StreamResponse:
    _, control, line = await _line(request)
    return json_response(control.view(line))


@_refusals
async def switch(request: web.Request) -> web.StreamResponse:
    principal, control, line = await _line(request)
    body = await _body(request)
    if not isinstance(body.get("on"), bool):
        raise OverflowRefused('expected {"on": true} or {"on": false}')
    await control.switch(principal.login, line, body["on"])
    return json_response(control.view(line))


@_refusals
async def schedule(request: web.Request) -> web.StreamResponse:
    principal, control, line = await _line(request)
    body = await _body(request)
    weekly, holidays = body.get("weekly", []), body.get("holidays", [])
    if not isinstance(weekly, list) or not isinstance(holidays, list):
        raise OverflowRefused('expected {"weekly": [{"from": "fri 18:00", "to": "mon 08:00"}], "holidays": [...]}')
    await control.set_schedule(principal.login, line, weekly, holidays)
    return json_response(control.view(line))


@_refusals
async def take_over(request: web.Request) -> web.StreamResponse:
    principal, control, line = await _line(request)
    body = await _body(request)
    try:
        until = datetime.fromisoformat(str(body["until"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise OverflowRefused('expected {"until": "2026-11-28T20:00:00+01:00"}') from None
    await control.take_over_until(principal.login, line, until)
    return json_response(control.view(line))


@_refusals
async def end_policy(request: web.Request) -> web.StreamResponse:
    principal, control, line = await _line(request)
    body = await _body(request)
    await control.set_end_policy(principal.login, line, str(body.get("end_policy")))
    return json_response(control.view(line))


@_refusals
async def audit(request: web.Request) -> web.StreamResponse:
    principal = await _admin(request)
    control = request.app[OVERFLOW]
    clients = principal.clients if principal.clients is not None else frozenset(control.tenant.clients)
    changes = await control.store.audit(set(clients))
    return json_response({"changes": [change.to_json() for change in changes]})


async def page(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is None:
        raise web.HTTPFound("/login")
    if session.principal.role not in (Role.CLIENT_ADMIN, Role.ADMIN):
        raise web.HTTPForbidden(text="This page is for client admins.")
    return web.FileResponse(STATIC_DIR / "client.html", headers={"Cache-Control": "no-store"})


def add_overflow_routes(app: web.Application, control: OverflowControl) -> None:
    app[OVERFLOW] = control
    app.router.add_get("/client", page)
    app.router.add_get("/api/overflow/lines", list_lines)
    app.router.add_get("/api/overflow/lines/{line}", get_line)
    app.router.add_post("/api/overflow/lines/{line}/switch", switch)
    app.router.add_put("/api/overflow/lines/{line}/schedule", schedule)
    app.router.add_post("/api/overflow/lines/{line}/takeover", take_over)
    app.router.add_put("/api/overflow/lines/{line}/end_policy", end_policy)
    app.router.add_get("/api/overflow/audit", audit)
