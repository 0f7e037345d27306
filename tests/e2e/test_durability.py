"""Nothing is lost: a killed bridge's calls are closed as interrupted by the next start."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.bridge import BridgeProcess
from peers.peer_process import start_caller

pytestmark = [pytest.mark.peers]

HEARTBEAT_S = 2.0


def parse(instant: str) -> datetime:
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))


async def test_kill9_of_the_bridge_mid_call_then_restart(tmp_path: Path, database_url: str) -> None:
    async with BridgeProcess.configured(tmp_path, database_url=database_url) as bridge:
        await bridge.wait_ready()
        caller = await start_caller(bridge.uri("1001"), calls=3, max_seconds=60)
        async with caller:
            open_calls = await bridge.wait_for_calls(
                lambda cs: len(cs) == 3 and all(c["outcome"] is None for c in cs), timeout=15
            )
            seen_open_at = datetime.now(UTC)
            # Let heartbeats move the calls' last known instant past their arrival.
            await asyncio.sleep(HEARTBEAT_S * 1.6)
            killed_at = datetime.now(UTC)
            await bridge.kill9()
            # The workers lose their control process, hang up and exit: the caller hears BYEs.
            result = await caller.wait(timeout=20)
        confirmed = [e for e in result.events if e.get("event") == "state" and e.get("state") == "CONFIRMED"]
        assert len(confirmed) == 3, result.describe()
        assert len(result.done) == 3

        await bridge.start()
        await bridge.wait_ready()
        calls = await bridge.calls()
        assert sorted(c["id"] for c in calls) == sorted(c["id"] for c in open_calls), "no call is missing"
        for record in calls:
            assert record["outcome"] == "interrupted"
            assert record["ended_by"] == "system"
            ended = parse(record["ended_at"])
            # Closed at its last known instant: within a heartbeat of the kill, never after it.
            assert killed_at.timestamp() - HEARTBEAT_S - 0.5 <= ended.timestamp() <= killed_at.timestamp() + 0.1
            # A heartbeat moved it past its arrival: it lasted at least until a heartbeat before the kill.
            assert record["duration_s"] >= (killed_at - seen_open_at).total_seconds() - HEARTBEAT_S - 0.3
            detail = await bridge.call(record["id"])
            kinds = [e["kind"] for e in detail["events"]]
            assert kinds[0] == "arrived"
            assert "queued" in kinds
            assert kinds[-1] == "interrupted"
        bridge.assert_loop_never_blocked()


async def test_twenty_kill9s_with_calls_up_leave_every_answered_call_with_a_closed_record(
    tmp_path: Path, database_url: str
) -> None:
    rounds, per_round = 20, 2
    rng = random.Random(4475)
    answered = 0
    async with BridgeProcess.configured(tmp_path, database_url=database_url) as bridge:
        for _ in range(rounds):
            if bridge.process is None or bridge.process.returncode is not None:
                await bridge.start()
            await bridge.wait_ready()
            caller = await start_caller(bridge.uri("1001"), calls=per_round, max_seconds=30)
            async with caller:
                await caller.wait_for("media_active", timeout=15)
                # Anywhere from the first answer to the second call's setup or music.
                await asyncio.sleep(rng.uniform(0.0, 0.8))
                await bridge.kill9()
                result = await caller.wait(timeout=20)
            answered += sum(1 for e in result.events if e.get("event") == "state" and e.get("state") == "CONFIRMED")
        await bridge.start()
        await bridge.wait_ready()
        records = await bridge.calls(limit="1000")
    outcomes = [r["outcome"] for r in records]
    print(f"\n{rounds} kill -9s: {answered} calls answered, {len(records)} records, outcomes {set(outcomes)}")
    assert None not in outcomes, "every record is closed"
    assert outcomes.count("interrupted") >= answered, "every answered call has its record"
    assert len(records) <= rounds * per_round
