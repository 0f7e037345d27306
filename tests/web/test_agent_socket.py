"""Login, sessions and the agent WebSocket over real HTTP, with a recording desk."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_client.web_agent import add_agent_routes
from agent_client.web_auth import Authenticator
from agent_client.web_sessions import COOKIE, SessionStore
from config.tenant_file import demo_tenant_path, load_tenant
from telephony.dispatcher import ProtocolError


@dataclass
class Desk:
    connected: list[str] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    handled: list[dict[str, Any]] = field(default_factory=list)

    async def agent_connected(self, login: str, link: Any) -> None:
        self.connected.append(login)
        link.send({"v": 1, "type": "hello", "agent": {"login": login}})

    async def agent_disconnected(self, login: str, link: Any) -> None:
        self.disconnected.append(login)

    async def handle(self, login: str, message: dict[str, Any]) -> None:
        self.handled.append(message)
        if message["type"] == "answer":
            raise ProtocolError("no_such_call", "That call is no longer ringing for you.")


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient[Any, Any], Desk]]:
    desk = Desk()
    app = web.Application()
    tenant = load_tenant(demo_tenant_path())
    add_agent_routes(app, sessions=SessionStore(), authenticator=Authenticator(tenant), desk=desk)
    async with TestClient(TestServer(app)) as http:
        yield http, desk


async def sign_in(
    http: TestClient[Any, Any], login: str = "alice", password: str = "alice-demo"
) -> aiohttp.ClientResponse:
    return await http.post("/api/login", json={"login": login, "password": password})


async def test_login_sets_an_httponly_strict_cookie(client: tuple[TestClient[Any, Any], Desk]) -> None:
    http, _ = client
    response = await sign_in(http)
    assert response.status == 200
    assert await response.json() == {"login": "alice", "name": "Alice Martin", "role": "agent"}
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert (await (await http.get("/api/me")).json())["login"] == "alice"


async def test_bad_logins_and_bodies(client: tuple[TestClient[Any, Any], Desk]) -> None:
    http, _ = client
    wrong = await sign_in(http, password="nope")
    assert wrong.status == 401
    assert await wrong.json() == {"error": "Wrong login or password."}
    assert (await sign_in(http, login="ghost")).status == 401
    garbage = await http.post("/api/login", data=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status == 400
    assert (await http.post("/api/login", json={"login": 5})).status == 400
    assert (await http.get("/api/me")).status == 401


async def test_pages_need_a_session_except_login(client: tuple[TestClient[Any, Any], Desk]) -> None:
    http, _ = client
    page = await http.get("/agent", allow_redirects=False)
    assert (page.status, page.headers["Location"]) == (302, "/login")
    assert (await http.get("/login")).status == 200
    await sign_in(http)
    assert (await http.get("/agent")).status == 200


async def test_the_socket_needs_an_agent_session(client: tuple[TestClient[Any, Any], Desk]) -> None:
    http, desk = client
    with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
        await http.ws_connect("/ws/agent")
    assert anonymous.value.status == 401
    await sign_in(http, "sam", "sam-demo")
    with pytest.raises(aiohttp.WSServerHandshakeError) as supervisor:
        await http.ws_connect("/ws/agent")
    assert supervisor.value.status == 403
    assert desk.connected == []


async def test_cross_origin_sockets_are_refused(client: tuple[TestClient[Any, Any], Desk]) -> None:
    http, _ = client
    await sign_in(http)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/ws/agent", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403


async def test_messages_are_checked_before_the_desk_sees_them(client: tuple[TestClient[Any, Any], Desk]) -> None:
    http, desk = client
    await sign_in(http)
    ws = await http.ws_connect("/ws/agent")
    assert (await ws.receive_json())["type"] == "hello"
    for raw, code, text in [
        ("not json", "bad_message", "not JSON"),
        ('{"v": 2, "type": "ping", "t": 1}', "unsupported_version", "this server speaks version 1"),
        ('{"v": 1, "type": "teleport"}', "bad_message", "unknown message type 'teleport'"),
        ('{"v": 1, "type": "hold", "call_id": "c1"}', "bad_message", "hold needs on"),
    ]:
        await ws.send_str(raw)
        error = await ws.receive_json()
        assert (error["type"], error["code"], error["message"]) == ("error", code, text)
    assert desk.handled == []
    await ws.send_str(json.dumps({"v": 1, "type": "answer", "call_id": "c9"}))
    refused = await ws.receive_json()
    assert (refused["code"], refused["ref"]) == ("no_such_call", "answer")
    assert desk.handled == [{"v": 1, "type": "answer", "call_id": "c9"}]
    await ws.close()


async def test_logout_closes_the_softphone_socket(client: tuple[TestClient[Any, Any], Desk]) -> None:
    http, desk = client
    await sign_in(http)
    ws = await http.ws_connect("/ws/agent")
    await ws.receive_json()
    assert (await http.post("/api/logout")).status == 204
    closing = await ws.receive()
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    await ws.close()
    assert desk.disconnected == ["alice"]
    assert (await http.get("/api/me")).status == 401
