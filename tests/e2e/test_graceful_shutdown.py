"""SIGTERM: refuse new calls, let the active ones finish, then hang up what is left.

`hotline serve` drains on SIGTERM: every worker refuses new INVITEs (503 with
Retry-After) while its calls go on for up to HOTLINE_DRAIN_TIMEOUT; then the
bridge hangs up the rest, closes their records as ended by the bridge (the
call was served to the end, nothing was interrupted), and exits 0. A restart
on the same database finds nothing left open.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from audio import read_wav, rms_dbfs
from harness.bridge import BridgeProcess
from peers.peer_process import PeerProcess, start_caller
from peers.rtp import RtpSink
from peers.sipp import SippResult, sipp_calls

pytestmark = [pytest.mark.peers]

DRAIN_S = 3.0
# Once the drain is over: hang up, wait for the records, stop the worker and the web.
EXIT_GRACE_S = 4.0


def response_header(result: SippResult, name: str) -> str | None:
    for message in result.messages:
        if message.direction == "received" and message.status and message.status >= 300:
            found = re.search(rf"^{name}:\s*(.+)$", message.text, re.MULTILINE | re.IGNORECASE)
            if found:
                return found.group(1).strip()
    return None


async def queued(bridge: BridgeProcess, count: int, timeout: float = 15.0) -> dict[str, dict[str, Any]]:
    """The open calls by caller, once there are `count` of them, each answered and queued."""
    deadline = time.monotonic() + timeout
    while True:
        calls = [c for c in await bridge.calls() if c["outcome"] is None]
        kinds = [[e["kind"] for e in (await bridge.call(c["id"]))["events"]] for c in calls]
        if len(calls) == count and all("queued" in k for k in kinds):
            return {c["caller"]: c for c in calls}
        assert time.monotonic() < deadline, f"not {count} queued calls: {kinds}"
        await asyncio.sleep(0.1)


async def draining(bridge: BridgeProcess, timeout: float = 2.0) -> None:
    """Wait until the worker's SIP stack itself refuses new calls."""
    deadline = time.monotonic() + timeout
    while True:
        _, body = await bridge.get_json("/api/workers")
        media = body["workers"][0].get("media") or {}
        if media.get("draining"):
            return
        assert time.monotonic() < deadline, f"the worker is not draining: {body}"
        await asyncio.sleep(0.02)


def disconnected_at(peer: PeerProcess) -> float:
    event = peer.find("state", state="DISCONNECTED")
    assert event is not None, peer.result().describe()
    return float(event["t"])


async def test_sigterm_drains_then_hangs_up_and_exits_cleanly(tmp_path: Path) -> None:
    bridge = BridgeProcess.configured(tmp_path, HOTLINE_DRAIN_TIMEOUT=f"{DRAIN_S:g}")
    async with bridge:
        await bridge.wait_ready()
        # One caller stays on the line; the other will hang up during the drain.
        stays = await start_caller(bridge.uri("1001"), from_user="stays", record=tmp_path / "stays.wav", max_seconds=40)
        leaves = await start_caller(bridge.uri("1001"), from_user="leaves", max_seconds=40)
        async with stays, leaves:
            await stays.wait_for("media_active", timeout=15)
            await leaves.wait_for("state", state="CONFIRMED", timeout=15)
            before = await queued(bridge, 2)

            signalled = time.monotonic()
            exited = asyncio.create_task(bridge.terminate(timeout=DRAIN_S + 20))
            await draining(bridge)

            # (a) A new call during the drain: 503, with when to come back.
            async with await RtpSink.open() as sink:
                refused = await sipp_calls(
                    f"127.0.0.1:{bridge.sip_port}",
                    workdir=tmp_path / "during-drain",
                    rtp_ports=[sink.port],
                    callee="1001",
                    caller="latecomer",
                    expect_status=503,
                    name="during-drain",
                    timeout_s=10,
                )
            assert refused.ok, refused.describe()
            assert refused.final_statuses() == [503]
            assert response_header(refused, "Retry-After") == "5"

            # (c) A caller who hangs up during the drain.
            assert time.monotonic() - signalled < DRAIN_S - 1.0, "still well within the drain"
            left = await leaves.stop()
            assert left.first("hangup") is not None, left.describe()
            (done,) = left.done
            assert done["hungup_by"] == "local", left.describe()

            # (b) The caller who stays: the call goes on until the drain time is over,
            #     then the bridge hangs up (the caller receives its BYE).
            stayed = await stays.wait(timeout=DRAIN_S + 15)
            assert stayed.ok, stayed.describe()
            (done,) = stayed.done
            assert done["hungup_by"] == "remote", stayed.describe()
            bye_after = disconnected_at(stays) - signalled
            assert DRAIN_S <= bye_after < DRAIN_S + 1.5, f"BYE {bye_after:.2f} s after SIGTERM"

            # The media went on during the drain: the caller heard something all along.
            media_active = stays.find("media_active")
            assert media_active is not None
            media_at = float(media_active["t"])
            assert stayed.recording is not None
            samples, rate = read_wav(stayed.recording)
            drain_heard = samples[
                int((signalled - media_at + 0.5) * rate) : int((signalled - media_at + DRAIN_S) * rate)
            ]
            assert len(drain_heard) > 2 * rate
            assert rms_dbfs(drain_heard) > -40, "greeting or music, not silence, during the drain"

        # (d) The bridge exits 0, soon after the drain time.
        code = await exited
        exited_after = time.monotonic() - signalled
        assert code == 0, bridge.log_tail()
        assert exited_after < DRAIN_S + EXIT_GRACE_S, f"exited {exited_after:.1f} s after SIGTERM"
        print(f"\nBYE {bye_after:.2f} s after SIGTERM, exit 0 after {exited_after:.2f} s (drain {DRAIN_S:g} s)")

        # (e) A restart on the same database finds every record closed, none to recover.
        await bridge.start()
        await bridge.wait_ready()
        after = {c["caller"]: c for c in await bridge.calls()}
        assert set(after) == {"stays", "leaves", "latecomer"}
        assert all(c["outcome"] is not None and c["ended_at"] for c in after.values()), after
        assert after["stays"]["id"] == before["stays"]["id"]
        assert (after["stays"]["outcome"], after["stays"]["ended_by"]) == ("abandoned", "bridge")
        assert after["leaves"]["id"] == before["leaves"]["id"]
        assert (after["leaves"]["outcome"], after["leaves"]["ended_by"]) == ("abandoned", "caller")
        # The worker refuses on its own while draining (no front to record it): it reports the refusal.
        assert (after["latecomer"]["outcome"], after["latecomer"]["sip_status"]) == ("rejected", 503)
        assert after["latecomer"]["did"] == "1001"
        for record in after.values():
            kinds = [e["kind"] for e in (await bridge.call(record["id"]))["events"]]
            assert "interrupted" not in kinds
            assert kinds[-1] == ("rejected" if record["caller"] == "latecomer" else "ended"), kinds
        assert "calls_recovered_as_interrupted" not in bridge.log_text()
        assert "interrupted=0" in bridge.log_text(), "the first run stopped with nothing left to interrupt"
        bridge.assert_loop_never_blocked()
