"""Sessions expire, and a tenant admin lists and ends them; an ended session's pages are closed at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

import agent_client.web_agent as web_agent
from agent_client.web_auth import Principal, Role
from agent_client.web_sessions import COOKIE, SessionStore
from harness.full_web import PASSWORDS, FullApp, basic, full_app

ADMIN = basic("admin")


@dataclass
class Clock:
    t: float = 5000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Bridge:
    fa: FullApp
    server: TestServer
    clock: Clock

    async def signed_in(self, login: str) -> aiohttp.ClientSession:
        http = aiohttp.ClientSession(base_url=self.server.make_url("/"), cookie_jar=aiohttp.CookieJar(unsafe=True))
        response = await http.post("/api/login", json={"login": login, "password": PASSWORDS[login]})
        assert response.status == 200
        return http

    async def admin(self, method: str, path: str) -> tuple[int, Any, str]:
        async with (
            aiohttp.ClientSession(base_url=self.server.make_url("/")) as http,
            http.request(method, path, headers=ADMIN) as response,
        ):
            text = await response.text()
            return response.status, await response.json(), text


@pytest.fixture
async def bridge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bridge]:
    monkeypatch.setattr(web_agent, "SOCKET_SWEEP_S", 0.05)
    clock = Clock()
    sessions = SessionStore(absolute_ttl_s=3600, idle_ttl_s=600, now=clock)
    async with full_app(tmp_path, sessions=sessions) as fa, TestServer(fa.app, host="127.0.0.1") as server:
        yield Bridge(fa, server, clock)


async def closed(ws: Any) -> tuple[int, str] | None:
    """How the server closed the socket (after whatever it still had to say), or None if it did not."""
    while (message := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
        pass
    return (message.data, message.extra) if message.type is aiohttp.WSMsgType.CLOSE else None


async def test_an_admin_lists_sessions_without_their_tokens_and_ends_one(bridge: Bridge) -> None:
    alice = await bridge.signed_in("alice")
    try:
        ws = await alice.ws_connect("/ws/agent")
        assert (await ws.receive_json())["type"] == "hello"
        status, listed, text = await bridge.admin("GET", "/api/admin/sessions")
        assert status == 200
        (session,) = listed["sessions"]
        assert (session["login"], session["role"], session["source"]) == ("alice", "agent", "127.0.0.1")
        assert set(session) == {"id", "login", "role", "source", "signed_in_at", "last_seen_at", "expires_at"}
        token = next(c.value for c in alice.cookie_jar if c.key == COOKIE)
        assert token not in text
        assert (await bridge.admin("GET", "/api/admin/sessions?login=bob"))[1] == {"sessions": []}

        assert await bridge.admin("DELETE", f"/api/admin/sessions/{session['id']}") == (
            200,
            {"revoked": [session["id"]]},
            f'{{"revoked": ["{session["id"]}"]}}',
        )
        assert await closed(ws) == (1008, "signed out by an admin"), "the revoked session's softphone is closed"
        assert (await alice.get("/api/me")).status == 401
        assert (await bridge.admin("DELETE", f"/api/admin/sessions/{session['id']}"))[0] == 404
    finally:
        await alice.close()


async def test_ending_all_of_a_login_closes_all_its_pages(bridge: Bridge) -> None:
    first, second, alice = (
        await bridge.signed_in("olga"),
        await bridge.signed_in("olga"),
        await bridge.signed_in("alice"),
    )
    try:
        boards = [await page.ws_connect("/ws/supervisor") for page in (first, second)]
        # Each page's hello: its socket is registered with its session before the sessions end.
        assert [(await ws.receive_json())["type"] for ws in boards] == ["hello", "hello"]
        status, body, _ = await bridge.admin("DELETE", "/api/admin/sessions?login=olga")
        assert status == 200
        assert len(body["revoked"]) == 2
        assert [await closed(ws) for ws in boards] == [(1008, "signed out by an admin")] * 2
        assert [s.principal.login for s in bridge.fa.sessions.live()] == ["alice"]
        assert (await bridge.admin("DELETE", "/api/admin/sessions"))[1]["field"] == "login"
    finally:
        for http in (first, second, alice):
            await http.close()


async def test_an_open_page_keeps_its_session_alive_until_its_lifetime_ends(bridge: Bridge) -> None:
    alice = await bridge.signed_in("alice")
    try:
        ws = await alice.ws_connect("/ws/agent")
        await ws.receive_json()
        # Idle for longer than the idle limit, but the page is open: the sweep keeps it.
        for _ in range(3):
            bridge.clock.t += 500
            await asyncio.sleep(0.15)
        assert len(bridge.fa.sessions.live()) == 1
        bridge.clock.t += 3600
        assert await closed(ws) == (1008, "session expired"), (
            "past its lifetime the session ends, and its page is closed"
        )
        assert (await alice.get("/api/me")).status == 401
    finally:
        await alice.close()


def test_sessions_expire_when_idle_or_too_old_and_ids_are_not_tokens() -> None:
    clock = Clock()
    store = SessionStore(absolute_ttl_s=100, idle_ttl_s=30, now=clock, wall=lambda: 1_000_000.0 + clock.t)
    who = Principal("alice", Role.AGENT, frozenset())
    idle, busy = store.create(who, "192.0.2.1"), store.create(who)
    assert len(idle.id) == 16
    assert idle.id not in idle.token
    for _ in range(4):
        clock.t += 25
        assert store.get(busy.token) is not None
    assert store.get(idle.token) is None, "idle for 100 s"
    assert store.expires_at(busy) == 1_000_000.0 + 5000 + 100
    clock.t += 1
    assert store.get(busy.token) is None, "older than its lifetime, however busy"
    assert store.live() == []
