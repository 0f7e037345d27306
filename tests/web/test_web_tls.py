"""HTTPS on the web port, and behind a TLS-terminating proxy: Secure cookies, origins, the client's address."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent_client.web_agent import add_agent_routes
from agent_client.web_app import WebContext, create_app
from agent_client.web_auth import Authenticator
from agent_client.web_edge import Edge, source_of
from agent_client.web_sessions import COOKIE, SessionStore
from config.settings import tls_context
from config.tenant_file import demo_tenant_path, load_tenant
from harness.certs import self_signed
from harness.full_web import AgentDesk

ALICE = {"login": "alice", "password": "alice-demo"}


async def _app(edge: Edge) -> web.Application:
    tenant = await asyncio.to_thread(load_tenant, demo_tenant_path())

    async def health() -> dict[str, Any]:
        return {"status": "ready"}

    app = create_app(WebContext(None, Authenticator(tenant), health, health), edge)  # type: ignore[arg-type]
    add_agent_routes(app, sessions=SessionStore(), authenticator=Authenticator(tenant), desk=AgentDesk())

    async def whence(request: web.Request) -> web.Response:
        return web.json_response({"source": source_of(request)})

    app.router.add_get("/_source", whence)
    return app


@pytest.fixture
async def https(tmp_path: Path) -> AsyncIterator[tuple[TestServer, ssl.SSLContext]]:
    cert, key = await asyncio.to_thread(self_signed, tmp_path)
    server_context = await asyncio.to_thread(tls_context, cert, key)
    assert server_context.minimum_version is ssl.TLSVersion.TLSv1_2
    client_context = ssl.create_default_context(cafile=str(cert))
    server = TestServer(await _app(Edge(tls=True)), host="127.0.0.1")
    await server.start_server(ssl=server_context)
    try:
        yield server, client_context
    finally:
        await server.close()


async def test_over_https_the_session_cookie_is_secure_httponly_and_strict(
    https: tuple[TestServer, ssl.SSLContext],
) -> None:
    server, trust = https
    assert server.scheme == "https"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        signed_in = await http.post(server.make_url("/api/login"), json=ALICE, ssl=trust)
        assert signed_in.status == 200
        cookie = signed_in.cookies[COOKIE]
        assert (cookie["secure"], cookie["httponly"], cookie["samesite"]) == (True, True, "Strict")
        assert signed_in.headers["Strict-Transport-Security"].startswith("max-age=")
        me = await http.get(server.make_url("/api/me"), ssl=trust)
        assert (await me.json())["login"] == "alice"
        origin = f"https://127.0.0.1:{server.port}"
        ws = await http.ws_connect(server.make_url("/ws/agent"), headers={"Origin": origin}, ssl=trust)
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        await ws.close()
        # The same host over plain http is another origin.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                server.make_url("/ws/agent"), headers={"Origin": f"http://127.0.0.1:{server.port}"}, ssl=trust
            )
        assert refused.value.status == 403
        bye = await http.post(server.make_url("/api/logout"), headers={"Origin": origin}, ssl=trust)
        assert bye.status == 204


async def test_tls_1_2_clients_are_served_and_nothing_older(https: tuple[TestServer, ssl.SSLContext]) -> None:
    server, trust = https
    trust.maximum_version = ssl.TLSVersion.TLSv1_2
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/login"), ssl=trust) as page:
        assert page.status == 200
    # Nothing older: the fixture checked the server context's floor (TLS 1.2), which control.py serves with.


@pytest.mark.parametrize("behind", [True, False])
async def test_forwarded_headers_count_only_behind_a_declared_proxy(behind: bool) -> None:
    app = await _app(Edge(behind_tls_proxy=behind))
    async with (
        TestServer(app, host="127.0.0.1") as server,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
        signed_in = await http.post(server.make_url("/api/login"), json=ALICE, headers=forwarded)
        assert signed_in.status == 200
        # Secure behind the proxy even though this hop is plain HTTP.
        assert (signed_in.cookies[COOKIE]["secure"] is True) is behind
        source = await (await http.get(server.make_url("/_source"), headers=forwarded)).json()
        # The proxy appends the address it saw: the last entry, never the client's own claims.
        assert source["source"] == ("203.0.113.9" if behind else "127.0.0.1")
        https_page = {**forwarded, "Origin": f"https://127.0.0.1:{server.port}"}
        # The jar won't send a Secure cookie over http: send it as the proxy would.
        cookie = {"Cookie": f"{COOKIE}={signed_in.cookies[COOKIE].value}"}
        bye = await http.post(server.make_url("/api/logout"), headers={**https_page, **cookie})
        assert bye.status == (204 if behind else 403)
