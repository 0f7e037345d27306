"""State-changing requests borne by the session cookie must come from the bridge's own origin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from harness.full_web import FullApp, basic, full_app

SWITCH = "/api/overflow/lines/acme-weekend/switch"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[tuple[FullApp, TestServer]]:
    async with full_app(tmp_path) as fa, TestServer(fa.app, host="127.0.0.1") as server:
        yield fa, server


@pytest.fixture
async def browser(bridge: tuple[FullApp, TestServer]) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """acme-admin signed in, as a browser holding the session cookie."""
    _, server = bridge
    async with aiohttp.ClientSession(base_url=server.make_url("/"), cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        signed_in = await http.post("/api/login", json={"login": "acme-admin", "password": "acme-demo"})
        assert signed_in.status == 200
        yield http, f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "{own}"}, 200),
        ({"Referer": "{own}/client"}, 200),
        ({"Origin": "{own}", "Referer": "https://evil.example/"}, 200),
        ({}, 403),
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "{own}.evil.example"}, 403),
        ({"Origin": "https://127.0.0.1:{port}"}, 403),
        ({"Referer": "https://evil.example/{own}"}, 403),
        ({"Origin": "https://evil.example", "Referer": "{own}/client"}, 403),
    ],
    ids=[
        "same-origin",
        "same-origin-referer",
        "origin-wins-over-referer",
        "neither",
        "other-site",
        "opaque-origin",
        "suffix-trick",
        "other-scheme",
        "referer-of-other-site",
        "other-origin-same-referer",
    ],
)
async def test_cookie_borne_changes_need_the_bridge_s_own_origin(
    bridge: tuple[FullApp, TestServer],
    browser: tuple[aiohttp.ClientSession, str],
    headers: dict[str, str],
    status: int,
) -> None:
    fa, _ = bridge
    http, own = browser
    port = own.rsplit(":", 1)[1]
    sent = {name: value.format(own=own, port=port) for name, value in headers.items()}
    response = await http.post(SWITCH, json={"on": False}, headers=sent)
    assert response.status == status
    if status == 403:
        assert (await response.json())["error"]
        assert fa.overflow.current()["acme-weekend"].switched_on, "a refused request changed nothing"


async def test_reads_are_not_checked_and_scripts_with_basic_are_not_forgeable(
    bridge: tuple[FullApp, TestServer], browser: tuple[aiohttp.ClientSession, str]
) -> None:
    fa, server = bridge
    http, _ = browser
    assert (await http.get("/api/overflow/lines", headers={"Origin": "https://evil.example"})).status == 200
    async with aiohttp.ClientSession(base_url=server.make_url("/")) as script:
        done = await script.post(SWITCH, json={"on": False}, headers=basic("acme-admin"))
        assert done.status == 200
        # A browser that cached Basic credentials still names the forging site: refused.
        forged = await script.post(
            SWITCH, json={"on": True}, headers={**basic("acme-admin"), "Origin": "https://evil.example"}
        )
        assert forged.status == 403
    assert not fa.overflow.current()["acme-weekend"].switched_on


async def test_login_is_not_forgeable_either(bridge: tuple[FullApp, TestServer]) -> None:
    _, server = bridge
    async with aiohttp.ClientSession(base_url=server.make_url("/")) as http:
        alice = {"login": "alice", "password": "alice-demo"}
        assert (await http.post("/api/login", json=alice, headers={"Origin": "https://evil.example"})).status == 403
        assert (await http.post("/api/login", json=alice)).status == 200, "scripts send no Origin"
