"""Every route as every role, in and out of scope, through the whole app: the answers agent_client/web_rbac.py says.

One tenant per bridge, so "out of scope" is another client of the tenant:
olga (supervisor of globex only) asks for acme's things, acme-admin for
globex's, alice (an agent) for bob's pay. The tenant admin's "other client"
is in scope. API routes are asked with HTTP Basic and again with a session
cookie (and a same-origin Origin, as the pages send).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from agent_client.web_agent import REQUIRED_FIELDS as AGENT_MESSAGES
from agent_client.web_auth import Principal, Role
from agent_client.web_rbac import ROUTES, SOCKET_MESSAGES, Access, Rule, rule_for
from agent_client.web_supervisor import REQUIRED_FIELDS as SUPERVISOR_MESSAGES
from harness.full_web import NOW, PASSWORDS, FullApp, basic, full_app


@dataclass(frozen=True)
class Who:
    login: str | None
    role: Role | None
    home: str
    away: str


ANONYMOUS = Who(None, None, "acme", "globex")
PEOPLE = (
    Who("admin", Role.ADMIN, "acme", "globex"),
    Who("olga", Role.SUPERVISOR, "globex", "acme"),
    Who("acme-admin", Role.CLIENT_ADMIN, "acme", "globex"),
    Who("alice", Role.AGENT, "acme", "globex"),
)
AGENT_OF = {"acme": "alice", "globex": "bob"}
DAY = "from=2026-11-23&to=2026-11-23"


@dataclass(frozen=True)
class Ask:
    path: str
    body: Any = None
    ok: int = 200
    # Public routes: what someone not signed in gets.
    anonymous: int | None = None


# How to ask each route for a client's thing (`to`): acme's or globex's.
Case = Callable[[FullApp, str, Who], Ask]
CASES: dict[tuple[str, str], Case] = {
    ("GET", "/healthz"): lambda f, to, who: Ask("/healthz"),
    ("GET", "/api/openapi.json"): lambda f, to, who: Ask("/api/openapi.json"),
    ("GET", "/static"): lambda f, to, who: Ask("/static/agent.css"),
    ("GET", "/login"): lambda f, to, who: Ask("/login"),
    ("POST", "/api/login"): lambda f, to, who: Ask(
        "/api/login",
        {"login": who.login or "nobody", "password": PASSWORDS.get(who.login or "", "x")},
        anonymous=401,
    ),
    ("POST", "/api/logout"): lambda f, to, who: Ask("/api/logout", ok=204, anonymous=204),
    ("GET", "/api/me"): lambda f, to, who: Ask("/api/me"),
    ("GET", "/"): lambda f, to, who: Ask("/", ok=302),
    ("GET", "/agent"): lambda f, to, who: Ask("/agent"),
    ("GET", "/agent/mic-check"): lambda f, to, who: Ask("/agent/mic-check"),
    ("GET", "/ws/agent"): lambda f, to, who: Ask("/ws/agent", ok=101),
    ("GET", "/supervisor"): lambda f, to, who: Ask("/supervisor"),
    ("GET", "/ws/supervisor"): lambda f, to, who: Ask("/ws/supervisor", ok=101),
    ("GET", "/client"): lambda f, to, who: Ask("/client"),
    ("GET", "/reports"): lambda f, to, who: Ask("/reports"),
    ("GET", "/api/calls"): lambda f, to, who: Ask(f"/api/calls?client={to}"),
    ("GET", "/api/calls/{call_id}"): lambda f, to, who: Ask(f"/api/calls/{f.calls[to]}"),
    ("GET", "/api/workers"): lambda f, to, who: Ask("/api/workers"),
    ("GET", "/api/supervisor/calls"): lambda f, to, who: Ask("/api/supervisor/calls"),
    ("GET", "/api/supervisor/calls/{call_id}"): lambda f, to, who: Ask(f"/api/supervisor/calls/{f.live[to]}"),
    ("POST", "/api/supervisor/calls/{call_id}/score"): lambda f, to, who: Ask(
        f"/api/supervisor/calls/{f.calls[to]}/score", {"score": 4, "comment": "matrix"}
    ),
    ("POST", "/api/supervisor/calls/{call_id}/record"): lambda f, to, who: Ask(
        f"/api/supervisor/calls/{f.live[to]}/record", {}
    ),
    ("GET", "/api/overflow/lines"): lambda f, to, who: Ask("/api/overflow/lines"),
    ("GET", "/api/overflow/lines/{line}"): lambda f, to, who: Ask(f"/api/overflow/lines/{f.lines[to]}"),
    ("POST", "/api/overflow/lines/{line}/switch"): lambda f, to, who: Ask(
        f"/api/overflow/lines/{f.lines[to]}/switch", {"on": True}
    ),
    ("PUT", "/api/overflow/lines/{line}/schedule"): lambda f, to, who: Ask(
        f"/api/overflow/lines/{f.lines[to]}/schedule", {"weekly": [{"from": "sat 00:00", "to": "mon 00:00"}]}
    ),
    ("POST", "/api/overflow/lines/{line}/takeover"): lambda f, to, who: Ask(
        f"/api/overflow/lines/{f.lines[to]}/takeover", {"until": (NOW + timedelta(hours=2)).isoformat()}
    ),
    ("PUT", "/api/overflow/lines/{line}/end_policy"): lambda f, to, who: Ask(
        f"/api/overflow/lines/{f.lines[to]}/end_policy", {"end_policy": "serve"}
    ),
    ("GET", "/api/overflow/audit"): lambda f, to, who: Ask("/api/overflow/audit"),
    ("GET", "/api/pay/statement"): lambda f, to, who: Ask(f"/api/pay/statement?agent={AGENT_OF[to]}&{DAY}"),
    ("GET", "/api/reports"): lambda f, to, who: Ask(f"/api/reports?client={to}&{DAY}"),
    ("GET", "/api/recordings"): lambda f, to, who: Ask("/api/recordings?from=2026-11-20&to=2026-11-30"),
    ("GET", "/api/recordings/{call_id}"): lambda f, to, who: Ask(f"/api/recordings/{f.calls[to]}"),
    ("GET", "/api/recordings/{call_id}/access"): lambda f, to, who: Ask(f"/api/recordings/{f.calls[to]}/access"),
    ("GET", "/api/admin/sessions"): lambda f, to, who: Ask("/api/admin/sessions"),
    ("DELETE", "/api/admin/sessions"): lambda f, to, who: Ask("/api/admin/sessions?login=bob"),
    ("DELETE", "/api/admin/sessions/{session_id}"): lambda f, to, who: Ask(
        f"/api/admin/sessions/{f.sessions.create(Principal('bob', Role.AGENT, frozenset())).id}"
    ),
}


def expected(rule: Rule, ask: Ask, who: Who, to: str) -> int:
    if who.role is None:
        anonymous = {Access.API: 401, Access.SESSION: 401, Access.SOCKET: 401, Access.PAGE: 302}
        return ask.anonymous or ask.ok if rule.access is Access.PUBLIC else anonymous[rule.access]
    if rule.access is Access.PUBLIC:
        return ask.ok
    if who.role not in rule.roles:
        return 403
    if to == who.away and rule.out_of_scope is not None and who.role is not Role.ADMIN:
        return rule.out_of_scope
    return ask.ok


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[tuple[FullApp, TestServer]]:
    async with full_app(tmp_path) as fa, TestServer(fa.app, host="127.0.0.1") as server:
        yield fa, server


async def _ask(server: TestServer, rule: Rule, ask: Ask, who: Who, transport: str) -> int:
    origin = str(server.make_url("/")).rstrip("/")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        headers = {}
        if who.login is not None and transport == "basic":
            headers.update(basic(who.login))
        elif who.login is not None:
            signed_in = await http.post(
                server.make_url("/api/login"), json={"login": who.login, "password": PASSWORDS[who.login]}
            )
            assert signed_in.status == 200, await signed_in.text()
            headers["Origin"] = origin
        url = server.make_url(ask.path)
        if rule.access is Access.SOCKET:
            try:
                async with http.ws_connect(url, headers=headers) as ws:
                    await ws.receive_json(timeout=5)  # the service's hello: the socket was served
                    return 101
            except aiohttp.WSServerHandshakeError as refused:
                return refused.status
        body = None if ask.body is None else json.dumps(ask.body)
        if body is not None:
            headers["Content-Type"] = "application/json"
        async with http.request(rule.method, url, data=body, headers=headers, allow_redirects=False) as response:
            await response.read()
            return response.status


async def test_every_route_answers_every_role_as_the_table_says(bridge: tuple[FullApp, TestServer]) -> None:
    fa, server = bridge
    wrong: list[str] = []
    asked = 0
    for rule in ROUTES:
        case = CASES[(rule.method, rule.path)]
        for who in (ANONYMOUS, *PEOPLE):
            transports = ("basic", "cookie") if rule.access is Access.API else ("cookie",)
            for transport in transports:
                for to in (who.home, who.away):
                    ask = case(fa, to, who)
                    want = expected(rule, ask, who, to)
                    got = await _ask(server, rule, ask, who, transport)
                    asked += 1
                    if got != want:
                        wrong.append(f"{rule.method} {ask.path} as {who.login} ({transport}): {got}, table says {want}")
    print(f"\nRBAC matrix: {len(ROUTES)} routes, {asked} requests, {len(wrong)} disagreements")
    assert not wrong, "\n".join(wrong)


async def test_every_route_has_a_row_and_every_row_a_route(bridge: tuple[FullApp, TestServer]) -> None:
    fa, _ = bridge
    served = set()
    for route in fa.app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        served.add((route.method, route.resource.canonical))
        assert rule_for(route.method, route.resource.canonical) is not None, (
            f"{route.method} {route.resource.canonical} has no row in agent_client/web_rbac.py"
        )
    tabled = {(rule.method, rule.path) for rule in ROUTES}
    assert tabled == served, f"rows without a route: {tabled - served}"
    assert set(CASES) == tabled, "every row needs a case in this test"


def test_every_socket_message_has_a_row() -> None:
    assert set(SOCKET_MESSAGES["/ws/agent"]) == set(AGENT_MESSAGES)
    assert set(SOCKET_MESSAGES["/ws/supervisor"]) == set(SUPERVISOR_MESSAGES)
    for socket, messages in SOCKET_MESSAGES.items():
        rule = rule_for("GET", socket)
        assert rule is not None
        assert rule.access is Access.SOCKET
        assert all(roles == rule.roles for roles, _ in messages.values()), socket


async def _socket(server: TestServer, login: str, path: str) -> tuple[aiohttp.ClientSession, Any]:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    signed_in = await http.post(server.make_url("/api/login"), json={"login": login, "password": PASSWORDS[login]})
    assert signed_in.status == 200
    ws = await http.ws_connect(server.make_url(path))
    return http, ws


async def _answer_to(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send_json({"v": 1, **message})
    while True:
        found = await ws.receive_json(timeout=5)
        if found["type"] in ("error", "pong"):
            return dict(found)


async def test_socket_messages_act_only_within_scope(bridge: tuple[FullApp, TestServer]) -> None:
    fa, server = bridge
    http, olga = await _socket(server, "olga", "/ws/supervisor")
    try:
        # Another client's live call: refused before anything happens; an agent's message: unknown here.
        outside = await _answer_to(olga, {"type": "record", "call_id": fa.live["acme"]})
        assert (outside["code"], outside["call_id"]) == ("no_such_call", fa.live["acme"])
        joined = await _answer_to(olga, {"type": "join", "call_id": fa.live["acme"], "sdp": "v=0", "mode": "listen"})
        assert joined["code"] == "forbidden"
        assert (await _answer_to(olga, {"type": "answer", "call_id": fa.live["globex"]}))["code"] == "bad_message"
        assert fa.floor.recording_started == []
        await olga.send_json({"v": 1, "type": "record", "call_id": fa.live["globex"]})
        assert (await _answer_to(olga, {"type": "ping", "t": 1}))["type"] == "pong"
        assert fa.floor.recording_started == [(fa.live["globex"], "olga")]
    finally:
        await olga.close()
        await http.close()
    http, alice = await _socket(server, "alice", "/ws/agent")
    try:
        await alice.receive_json(timeout=5)
        refused = await _answer_to(alice, {"type": "join", "call_id": fa.live["acme"], "sdp": "v=0", "mode": "listen"})
        assert (refused["code"], refused["message"]) == ("bad_message", "unknown message type 'join'")
        assert fa.desk.handled == []
    finally:
        await alice.close()
        await http.close()
