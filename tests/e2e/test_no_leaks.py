"""A thousand calls later, a worker holds nothing it held for them.

pjsua2 punishes leaks late: a Call object kept past its DISCONNECTED, a
player never destroyed, a conference port never removed all work for a
while, then a worker refuses calls. So: a thousand calls through one worker,
one after another, and the adapter's own counts (legs, conference ports,
players, threads, plus the worker's open file descriptors) must be back
where one warm-up call left them, and every call must have its closed record.

Before the thousand, CANCELs and a quiet two seconds: a call that ends with
nothing connected in pjsua's conference arms its sound-device idle timer, so
that with `sndAutoCloseTime` at pjsua's default (1 s) the null sound device
would close there, and the calls after it depend on its clock running again
(greetings ending, ports going away).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.bridge import BridgeProcess
from peers.peer_process import start_caller
from peers.rtp import RtpSink
from peers.sipp import cancel_scenario, run_sipp, uac_scenario, write_injection_csv, write_scenario

pytestmark = [pytest.mark.peers]

CALLS = 1000
CANCELLED = 40
# A worker survives about 60 short calls ending per second, not more: each call's
# RTP/RTCP sockets hold two pjlib ioqueue keys (64 by default) until some time after
# the call (500 ms by default); test_call_endings.py has the burst that kills it
# (a known bug). The CANCELs here go well below that.
CANCEL_RATE = 20
IN_MUSIC = 4
IDLE_S = 2.0


async def worker_media(bridge: BridgeProcess) -> dict[str, Any]:
    status, body = await bridge.get_json("/api/workers")
    assert status == 200, body
    (worker,) = body["workers"]
    assert worker["state"] == "ready", worker
    assert worker["restarts"] == 0, "the worker never died"
    media = dict(worker["media"])
    pid = int(worker["pid"])
    media["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return media


async def settled(
    bridge: BridgeProcess, until: Callable[[dict[str, Any]], bool], timeout: float = 3.0
) -> dict[str, Any]:
    """The worker's stats once `until` holds, or the last ones after `timeout`.

    A call's conference ports go a tick or two after its 200 to BYE, and its
    DISCONNECTED may trail that 200 too: what must be gone must be gone soon,
    not necessarily at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        media = await worker_media(bridge)
        if until(media) or time.monotonic() > deadline:
            return media
        await asyncio.sleep(0.02)


def leak_view(media: dict[str, Any]) -> dict[str, Any]:
    keys = ("legs", "leg_ids", "conference_ports", "players", "music_players", "threads", "fds")
    return {k: media[k] for k in keys}


async def warm_up(bridge: BridgeProcess) -> float:
    """One call that reaches the hold music (creating the shared music player); returns the greeting's length."""
    caller = await start_caller(bridge.uri("1001"), max_seconds=30)
    async with caller:
        await caller.wait_for("state", state="CONFIRMED", timeout=15)
        deadline = time.monotonic() + 15
        while True:
            calls = await bridge.calls()
            detail = await bridge.call(calls[0]["id"])
            at = {e["kind"]: e["mono"] for e in detail["events"]}
            if "music_started" in at:
                break
            assert time.monotonic() < deadline, f"no music after the greeting: {detail['events']}"
            await asyncio.sleep(0.1)
    await bridge.wait_for_calls(lambda cs: cs[0]["outcome"] is not None)
    return float(at["music_started"] - at["greeting_started"])


async def test_a_thousand_sequential_calls_leave_nothing_behind(tmp_path: Path) -> None:
    started = time.monotonic()
    async with BridgeProcess.configured(tmp_path) as bridge, await RtpSink.open() as sink:
        await bridge.wait_ready()
        target = f"127.0.0.1:{bridge.sip_port}"
        inf = write_injection_csv(tmp_path / "callers.csv", [(sink.port, "1001", "0612345678")])
        at_start = await worker_media(bridge)

        greeting_s = await warm_up(bridge)
        # What one call leaves: the shared music player (its conference port too), nothing else.
        expected = {
            "legs": 0,
            "leg_ids": [],
            "players": 1,
            "music_players": 1,
            "conference_ports": at_start["conference_ports"] + 1,
        }
        baseline = await settled(bridge, lambda m: {k: m[k] for k in expected} == expected)
        assert {k: baseline[k] for k in expected} == expected, (at_start, baseline)

        def as_baseline(media: dict[str, Any]) -> bool:
            return leak_view(media) == leak_view(baseline)

        # 1. CANCELs before the answer. A call that ends with nothing connected in
        #    pjsua's conference arms its sound-device idle timer.
        cancel = write_scenario(tmp_path / "cancel.xml", cancel_scenario(name="cancel"))
        cancelled = await run_sipp(
            cancel, target, workdir=tmp_path / "cancel", calls=CANCELLED, concurrency=1, rate=CANCEL_RATE, inf=inf
        )
        assert cancelled.ok, cancelled.describe()
        paths = cancelled.final_status_by_call_id()
        assert len(paths) == CANCELLED
        assert set(paths.values()) <= {487, 200}
        after_cancels = await settled(bridge, as_baseline)
        assert leak_view(after_cancels) == leak_view(baseline), (baseline, after_cancels)
        # 2. Quiet for a while, as a bridge is between calls: with pjsua's default
        #    sndAutoCloseTime (1 s) the null sound device closes now, and its clock
        #    must run again for the calls to come (greetings end, ports go).
        await asyncio.sleep(IDLE_S)
        after_idle = await worker_media(bridge)
        # (With an auto-closing sound device, its clock thread is gone by now.)
        assert leak_view(after_idle) == leak_view(baseline), "idle, the worker's media clock keeps running"

        # 3. A thousand calls, one at a time, as fast as they go: answered, then BYE at once.
        quick = write_scenario(tmp_path / "quick.xml", uac_scenario(hold_s=0, name="quick"))
        run_started = time.monotonic()
        result = await run_sipp(
            quick,
            target,
            workdir=tmp_path / "quick",
            calls=CALLS,
            concurrency=1,
            rate=10_000,
            inf=inf,
            timeout_s=75,
            # A thousand calls' message log is too much to parse on the test's event loop.
            trace_msg=False,
        )
        elapsed = time.monotonic() - run_started
        print(f"\n{CALLS} sequential calls in {elapsed:.1f} s: {CALLS / elapsed:.1f} calls/s")
        assert result.ok, result.describe()
        assert (result.successful_calls, result.failed_calls) == (CALLS, 0), "every call was answered with 200"
        after_run = await settled(bridge, as_baseline)
        assert leak_view(after_run) == leak_view(baseline), (at_start, baseline, after_run)
        # Every answered call's media sockets were pinned to the caller's declared address, none failed.
        assert after_run["rtp_pin_failures"] == 0, after_run
        assert after_run["rtp_pins"] >= CALLS, after_run

        records = await bridge.wait_for_calls(
            lambda cs: len(cs) == CALLS and all(c["outcome"] for c in cs), timeout=15, limit=str(CALLS)
        )
        assert {c["outcome"] for c in records} == {"abandoned"}
        assert {c["ended_by"] for c in records} == {"caller"}
        assert {c["sip_status"] for c in records} == {200}
        assert all(c["ended_at"] for c in records)
        assert len({c["sip_call_id"] for c in records}) == CALLS

        # 4. Callers who stay into the music, all at once, then hang up.
        in_music = write_scenario(tmp_path / "music.xml", uac_scenario(hold_s=greeting_s + 1.0, name="music"))
        music = await run_sipp(
            in_music,
            target,
            workdir=tmp_path / "music",
            calls=IN_MUSIC,
            concurrency=IN_MUSIC,
            rate=10_000,
            inf=inf,
            timeout_s=greeting_s + 20,
        )
        assert music.ok, music.describe()
        after_music = await settled(bridge, as_baseline)
        assert leak_view(after_music) == leak_view(baseline), (baseline, after_music)

        # Every call has its closed record: warm-up, CANCELs, the thousand, the music.
        total = 1 + CANCELLED + CALLS + IN_MUSIC
        everything = await bridge.wait_for_calls(
            lambda cs: len(cs) == IN_MUSIC and all(c["outcome"] for c in cs), limit=str(IN_MUSIC)
        )
        everything += await bridge.calls(limit=str(CALLS), offset=str(IN_MUSIC))
        everything += await bridge.calls(limit=str(CALLS), offset=str(IN_MUSIC + CALLS))
        assert len(everything) == total
        assert all(c["outcome"] and c["ended_at"] for c in everything), "no record is left open"
        by_sip_call_id = {c["sip_call_id"]: c for c in everything}
        for call_id, status in paths.items():
            record = by_sip_call_id[call_id]
            assert (record["outcome"], record["ended_by"], record["sip_status"]) == ("abandoned", "caller", status)
            if status == 487:
                assert record["queue_wait_s"] == 0
        for call_id in music.final_status_by_call_id():
            record = by_sip_call_id[call_id]
            assert (record["outcome"], record["ended_by"], record["sip_status"]) == ("abandoned", "caller", 200)
            kinds = [e["kind"] for e in (await bridge.call(record["id"]))["events"]]
            assert "music_started" in kinds, kinds

        _, health = await bridge.get_json("/healthz")
        assert health["calls"]["open"] == 0
        print(
            f"worker at start {leak_view(at_start)}\n"
            f"after warm-up   {leak_view(baseline)}\n"
            f"after CANCELs   {leak_view(after_cancels)} "
            f"({list(paths.values()).count(487)} x 487, {list(paths.values()).count(200)} x 200)\n"
            f"after {IDLE_S:g} s idle {leak_view(after_idle)}\n"
            f"after {CALLS}      {leak_view(after_run)}\n"
            f"after music     {leak_view(after_music)}\n"
            f"test took {time.monotonic() - started:.1f} s"
        )
        bridge.assert_loop_never_blocked()
