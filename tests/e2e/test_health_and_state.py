"""/healthz, and the queue kept in Redis while a caller waits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from harness.bridge import BridgeProcess
from harness.services import REDIS_URL, delete_prefix, ensure_redis, new_redis_prefix
from peers.peer_process import start_caller
from store.live_state import open_live_state

T = TypeVar("T")

pytestmark = [pytest.mark.peers]


async def test_healthz_reports_sip_db_and_state(bridge: BridgeProcess) -> None:
    status, report = await bridge.get_json("/healthz", auth=None)
    assert status == 200
    assert report["status"] == "ready"
    assert report["db"]["ready"] is True
    assert report["state"] == {"ready": True, "latency_ms": report["state"]["latency_ms"], "backend": "memory"}
    (worker,) = report["sip"]["workers"]
    assert worker["state"] == "ready"
    assert worker["sip_port"] == bridge.sip_port
    assert report["sip"]["ready"] is True


async def test_waiting_caller_is_queued_in_redis_and_leaves_on_hangup(tmp_path: Path) -> None:
    await ensure_redis()
    prefix = new_redis_prefix()
    # The test reads the queue through the same interface, from another process.
    state = await open_live_state(REDIS_URL, prefix)
    try:
        async with BridgeProcess.configured(
            tmp_path, HOTLINE_REDIS_URL=REDIS_URL, HOTLINE_REDIS_PREFIX=prefix
        ) as bridge:
            report = await bridge.wait_ready()
            assert report["state"]["backend"].startswith("redis://")
            async with await start_caller(bridge.uri("1001"), hangup_after=3.0, max_seconds=20) as caller:
                await caller.wait_for("state", state="CONFIRMED", timeout=10)
                waiting = await _eventually(lambda: state.entries("acme"), lambda e: len(e) == 1)
                calls = await bridge.calls()
                assert [entry.call_id for entry in waiting] == [calls[0]["id"]]
                assert waiting[0].client_id == "acme"
                result = await caller.wait(timeout=20)
            assert result.ok, result.describe()
            await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"] == "abandoned")
            assert await _eventually(lambda: state.entries("acme"), lambda e: e == []) == []
    finally:
        await state.close()
        await delete_prefix(prefix)


async def _eventually(read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 5.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await read()
        if ok(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)
