"""Failed sign-ins over HTTP: 401 then 429 with Retry-After, alike for unknown logins, for Basic too; a lock ends."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import agent_client.web_auth as web_auth
from agent_client.web_agent import add_agent_routes
from agent_client.web_app import WebContext, create_app, principal_of
from agent_client.web_auth import Authenticator
from agent_client.web_edge import Edge
from agent_client.web_sessions import SessionStore
from config.tenant_file import demo_tenant_path, load_tenant
from harness.full_web import AgentDesk


@dataclass
class Clock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Bridge:
    url: Any
    clock: Clock
    verified: list[str]


@pytest.fixture
async def bridge(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bridge]:
    tenant = await asyncio.to_thread(load_tenant, demo_tenant_path())
    clock, verified = Clock(), []
    real_verify = web_auth._verify

    def counted(password_hash: str, password: str) -> bool:
        verified.append(password)
        return real_verify(password_hash, password)

    monkeypatch.setattr(web_auth, "_verify", counted)
    # No memory of successes: each right password pays argon2 and is seen by the throttle.
    authenticator = Authenticator(tenant, now=clock, remember_s=0)

    async def health() -> dict[str, Any]:
        return {"status": "ready"}

    # Behind a (pretend) proxy, so that a test can speak from several addresses.
    app = create_app(WebContext(None, authenticator, health, health), Edge(behind_tls_proxy=True))  # type: ignore[arg-type]
    add_agent_routes(app, sessions=SessionStore(), authenticator=authenticator, desk=AgentDesk())

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"login": (await principal_of(request)).login})

    app.router.add_get("/api/whoami", whoami)
    async with TestServer(app, host="127.0.0.1") as server:
        yield Bridge(server.make_url("/"), clock, verified)


async def sign_in(bridge: Bridge, login: str, password: str, source: str = "192.0.2.1") -> tuple[int, Any, str | None]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            bridge.url.with_path("/api/login"),
            json={"login": login, "password": password},
            headers={"X-Forwarded-For": source},
        ) as response,
    ):
        return response.status, await response.json(), response.headers.get("Retry-After")


async def test_unknown_logins_and_wrong_passwords_are_answered_alike_then_locked(bridge: Bridge) -> None:
    answers = {}
    for login in ("alice", "nobody"):
        seen = [await sign_in(bridge, login, "wrong", source=f"192.0.2.{len(answers) + 10}") for _ in range(5)]
        answers[login] = seen
    assert answers["alice"] == answers["nobody"]
    assert [status for status, _, _ in answers["alice"]] == [401, 401, 401, 401, 429]
    assert answers["alice"][0][1] == {"error": "Wrong login or password."}
    assert answers["alice"][4] == (
        429,
        {"error": "Too many failed sign-ins. Try again in 60 s.", "retry_after_s": 60},
        "60",
    )
    # Both cost one argon2 verification each: an unknown login is verified against a dummy hash.
    assert len(bridge.verified) == 10


async def test_a_locked_pair_is_refused_unverified_until_the_lock_ends(bridge: Bridge) -> None:
    for _ in range(5):
        await sign_in(bridge, "alice", "wrong")
    verified = len(bridge.verified)
    status, _, retry = await sign_in(bridge, "alice", "alice-demo")
    assert (status, retry) == (429, "60")
    assert len(bridge.verified) == verified, "a locked attempt costs no argon2"
    bridge.clock.t += 61
    assert (await sign_in(bridge, "alice", "alice-demo"))[0] == 200


async def test_an_attack_from_elsewhere_does_not_lock_alice_out_of_her_usual_address(bridge: Bridge) -> None:
    assert (await sign_in(bridge, "alice", "alice-demo", source="10.1.1.1"))[0] == 200
    for attacker in ("198.51.100.1", "198.51.100.2"):
        for _ in range(5):
            await sign_in(bridge, "alice", "guess", source=attacker)
    assert (await sign_in(bridge, "alice", "alice-demo", source="203.0.113.50"))[0] == 429
    assert (await sign_in(bridge, "alice", "alice-demo", source="10.1.1.1"))[0] == 200
    # And the lock on new addresses ends at most fifteen minutes after the attack stops.
    bridge.clock.t += 900
    assert (await sign_in(bridge, "alice", "alice-demo", source="203.0.113.50"))[0] == 200


async def test_http_basic_failures_are_throttled_too(bridge: Bridge) -> None:
    def basic(password: str) -> dict[str, str]:
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}", "X-Forwarded-For": "192.0.2.99"}

    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            async with http.get(bridge.url.with_path("/api/whoami"), headers=basic("wrong")) as response:
                statuses.append(response.status)
                retry = response.headers.get("Retry-After")
        async with http.get(bridge.url.with_path("/api/whoami"), headers=basic("admin-demo")) as locked:
            assert locked.status == 429
    assert (statuses, retry) == ([401, 401, 401, 401, 429], "60")
