"""Weekend overflow over HTTP: what a client admin's page and scripts both use.

A client admin sees and changes only their own client's lines; another
client's line answers 404, as an unknown one does. Tenant admins see every
line. Each change is saved and audited before the answer goes back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from aiohttp import web

from agent_client.web_agent import STATIC_DIR, session_of
from agent_client.web_app import FIRST_YEAR, LAST_YEAR, json_response, principal_of
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


class _Invalid(ValueError):
    """A bad body, naming the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Invalid("body", "expected a JSON object") from None
    if not isinstance(body, dict):
        raise _Invalid("body", "expected a JSON object")
    return body


def _refusals(field: str) -> Callable[[Handler], Handler]:
    """Refusals as JSON; a 400 names `field` (the one the handler's body is about) unless more precise."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _Invalid as exc:
                return json_response({"error": str(exc), "field": exc.field}, 400)
            except OverflowRefused as exc:
                if exc.status == 400:
                    return json_response({"error": str(exc), "field": field}, 400)
                return json_response({"error": str(exc)}, exc.status)

        return guarded

    return wrap


async def _line(request: web.Request) -> tuple[Principal, OverflowControl, Line]:
    """Who asks, and the line they name, if theirs (another client's is a 404, as an unknown one)."""
    principal = await _admin(request)
    control = request.app[OVERFLOW]
    return principal, control, control.line(request.match_info["line"], principal.clients)


@_refusals("")
async def list_lines(request: web.Request) -> web.StreamResponse:
    principal = await _admin(request)
    control = request.app[OVERFLOW]
    return json_response({"lines": [control.view(line) for line in control.lines(principal.clients)]})


@_refusals("")
async def get_line(request: web.Request) -> web.StreamResponse:
    _, control, line = await _line(request)
    return json_response(control.view(line))


@_refusals("on")
async def switch(request: web.Request) -> web.StreamResponse:
    principal, control, line = await _line(request)
    body = await _body(request)
    if not isinstance(body.get("on"), bool):
        raise _Invalid("on", 'on: expected {"on": true} or {"on": false}')
    await control.switch(principal.login, line, body["on"])
    return json_response(control.view(line))


@_refusals("weekly")
async def schedule(request: web.Request) -> web.StreamResponse:
    principal, control, line = await _line(request)
    body = await _body(request)
    weekly, holidays = body.get("weekly", []), body.get("holidays", [])
    if not isinstance(weekly, list) or not all(
        isinstance(span, dict) and isinstance(span.get("from"), str) and isinstance(span.get("to"), str)
        for span in weekly
    ):
        raise _Invalid("weekly", 'weekly: expected [{"from": "fri 18:00", "to": "mon 08:00"}, ...]')
    if not isinstance(holidays, list) or not all(isinstance(day, str) and _is_date(day) for day in holidays):
        raise _Invalid("holidays", f'holidays: expected dates such as ["2026-12-25"], {FIRST_YEAR} to {LAST_YEAR}')
    await control.set_schedule(principal.login, line, weekly, holidays)
    return json_response(control.view(line))


@_refusals("until")
async def take_over(request: web.Request) -> web.StreamResponse:
    principal, control, line = await _line(request)
    body = await _body(request)
    raw = body.get("until")
    try:
        until = datetime.fromisoformat(raw.replace("Z", "+00:00")) if isinstance(raw, str) else None
    except ValueError:
        until = None
    if until is None:
        raise _Invalid("until", 'until: expected {"until": "2026-11-28T20:00:00+01:00"}')
    await control.take_over_until(principal.login, line, until)
    return json_response(control.view(line))


@_refusals("end_policy")
async def end_policy(request: web.Request) -> web.StreamResponse:
    principal, control, line = await _line(request)
    body = await _body(request)
    policy = body.get("end_policy")
    if not isinstance(policy, str):
        raise _Invalid("end_policy", 'end_policy: expected {"end_policy": "serve"} or another policy')
    await control.set_end_policy(principal.login, line, policy)
    return json_response(control.view(line))


@_refusals("")
async def audit(request: web.Request) -> web.StreamResponse:
    principal = await _admin(request)
    control = request.app[OVERFLOW]
    clients = principal.clients if principal.clients is not None else frozenset(control.tenant.clients)
    changes = await control.store.audit(set(clients))
    return json_response({"changes": [change.to_json() for change in changes]})


def _is_date(raw: str) -> bool:
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return False
    # A holiday in year 1 is a typo, and its window's arithmetic overflows (found by schemathesis).
    return FIRST_YEAR <= day.year <= LAST_YEAR


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
