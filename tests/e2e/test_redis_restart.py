"""The real Redis server stopped and started again (it keeps nothing on disk) while a caller waits.

The bridge must keep the call, say in /healthz that its state is degraded
while Redis is away, and once it is back write its agent and queue entry
back: nothing the bridge held is lost. The server is started again with
the same command as ./dev's, whatever the test's outcome.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.bridge import BridgeProcess
from harness.services import REDIS_URL, delete_prefix, ensure_redis, new_redis_prefix
from peers.peer_process import start_caller
from store.live_state import open_live_state

pytestmark = [pytest.mark.peers]

REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
    "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip


def redis_answers() -> bool:
    return subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True, text=True).stdout.strip() == "PONG"


def stop_redis() -> None:
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True)
    deadline = time.monotonic() + 10
    while redis_answers():
        if time.monotonic() > deadline:
            raise AssertionError("Redis did not stop")
        time.sleep(0.1)


def start_redis() -> None:
    if redis_answers():
        return
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(REDIS_START, check=True, capture_output=True)
    deadline = time.monotonic() + 10
    while not redis_answers():
        if time.monotonic() > deadline:
            raise AssertionError("Redis did not start again")
        time.sleep(0.1)


@pytest.fixture
async def redis_restartable() -> AsyncIterator[None]:
    await ensure_redis()
    try:
        yield
    finally:
        await asyncio.to_thread(start_redis)


async def health(bridge: BridgeProcess) -> dict[str, Any]:
    _, report = await bridge.get_json("/healthz", auth=None)
    return dict(report)


async def until(bridge: BridgeProcess, want: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    report = await health(bridge)
    while report["status"] != want and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        report = await health(bridge)
    return report


async def test_a_redis_restart_loses_no_agent_state_or_queue_entry(tmp_path: Path, redis_restartable: None) -> None:
    prefix = new_redis_prefix()
    env = {"HOTLINE_REDIS_URL": REDIS_URL, "HOTLINE_REDIS_PREFIX": prefix}
    jar = aiohttp.CookieJar(unsafe=True)  # the bridge is an IP address
    async with BridgeProcess.configured(tmp_path, **env) as bridge, aiohttp.ClientSession(cookie_jar=jar) as http:
        await bridge.wait_ready()
        origin = {"Origin": bridge.http("").rstrip("/")}
        signed_in = await http.post(
            bridge.http("/api/login"), json={"login": "alice", "password": "alice-demo"}, headers=origin
        )
        assert signed_in.status == 200, await signed_in.text()
        async with (
            http.ws_connect(bridge.http("/ws/agent").replace("http", "ws", 1), headers=origin) as socket,
            await start_caller(bridge.uri("1001"), max_seconds=60) as caller,
        ):
            await socket.receive_json(timeout=5)  # hello
            await caller.wait_for("state", state="CONFIRMED", timeout=15)
            (call,) = await bridge.wait_for_calls(lambda cs: len(cs) == 1)
            state = await open_live_state(REDIS_URL, prefix)
            try:
                for _ in range(50):
                    if await state.entries("acme") and await state.get_agent("alice"):
                        break
                    await asyncio.sleep(0.1)
                before_agent = await state.get_agent("alice")
                assert [e.call_id for e in await state.entries("acme")] == [call["id"]]
                assert before_agent is not None

                await asyncio.to_thread(stop_redis)
                down = await until(bridge, "degraded")
                # Still serving: a caller who rings meanwhile is answered and queued (in memory).
                async with await start_caller(bridge.uri("1001"), max_seconds=60) as second:
                    await second.wait_for("state", state="CONFIRMED", timeout=15)
                    calls = await bridge.wait_for_calls(lambda cs: len(cs) == 2)
                    await asyncio.to_thread(start_redis)
                    back = await until(bridge, "ready")
                    # A new connection: the test's own died with the server.
                    await state.close()
                    state = await open_live_state(REDIS_URL, prefix)
                    after_entries = await state.entries("acme")
                    after_agent = await state.get_agent("alice")
            finally:
                await state.close()
                await delete_prefix(prefix)
            assert caller.returncode is None, "the caller kept its call through the outage"
            assert not [e for e in caller.events if e.get("state") == "DISCONNECTED"]

    print(f"\nwhile Redis was down: {down['status']}, state {down['state']}\nafter: {back['status']}")
    assert down["status"] == "degraded"
    assert down["state"]["ready"] is False
    assert "serving from this node's memory" in down["state"]["backend"]
    assert back["status"] == "ready"
    # Both callers, in the order they came: the one from before and the one during the outage.
    assert [e.call_id for e in after_entries] == [c["id"] for c in sorted(calls, key=lambda c: c["arrived_at"])]
    assert after_agent is not None
    assert (after_agent.state, after_agent.reason) == (before_agent.state, before_agent.reason)
