"""Supervisors end to end: the wallboard, and listen, whisper and barge, frequency-tagged.

Real peers: `hotline serve`, a pjsua2 caller at 440 Hz recording what it hears,
a Chromium agent whose microphone plays 1000 Hz and a Chromium supervisor whose
microphone plays 1700 Hz. Who hears whom is read from the caller's recording
and from the audio each page receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from playwright.async_api import Playwright, expect

from audio import AGENT_HZ, CALLER_HZ, SUPERVISOR_HZ, read_wav, tone_present, write_tone_wav
from harness.accessibility import check_accessibility
from harness.bridge import BridgeProcess
from harness.softphone import answer_call, go_available, hears, launch, signed_in, wait_hears
from harness.tenants import SAM_AND_GUS, TENANTS
from peers.peer_process import start_caller

pytestmark = [pytest.mark.peers]

# sam supervises acme and globex; gus only globex. Globex forbids live listening;
# acme's agents are shown who is listening.
SUPERVISORS = SAM_AND_GUS
# Shares of a page's received signal at a frequency. A browser's microphone tone arrives some
# 20 dB under the caller's (Chromium's capture processing): about 0.01 of the mix, while a
# frequency nobody sends measures about 1e-6.
HEARD = 1e-3
SILENT = 1e-4
SETTLE_S = 0.6  # left out at the start of each mode's window: the switch, and the jitter buffers


def tenant(tmp_path: Path) -> Path:
    text = (TENANTS / "softphone.toml").read_text()
    text = text.replace(
        'knowledge_base_url = "https://kb.example.com/acme"\n',
        ('knowledge_base_url = "https://kb.example.com/acme"\nagent_sees_supervisor = true\n'),
    )
    text = text.replace("mask_caller_number = true\n", "mask_caller_number = true\nlive_listening = false\n")
    path = tmp_path / "supervision.toml"
    path.write_text(text + SUPERVISORS)
    return path


@contextlib.asynccontextmanager
async def http_as(bridge: BridgeProcess, login: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client signed in as `login` (the demo password), with its session cookie."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(bridge.http("/api/login"), json={"login": login, "password": "alice-demo"}) as resp:
            assert resp.status == 200, await resp.text()
        yield http


async def ws_join(http: aiohttp.ClientSession, bridge: BridgeProcess, call_id: str) -> dict[str, Any]:
    """What the server answers a supervisor's socket asking to join `call_id`."""
    async with http.ws_connect(bridge.http("/ws/supervisor")) as ws:
        sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        await ws.send_json({"v": 1, "type": "join", "call_id": call_id, "sdp": sdp, "mode": "listen"})
        while True:
            message = json.loads((await ws.receive(timeout=5)).data)
            if message["type"] == "error":
                return dict(message)


async def rtc_legs(bridge: BridgeProcess) -> int:
    status, workers = await bridge.get_json("/api/workers")
    assert status == 200, workers
    return sum(int(w["media"]["rtc_legs"]) for w in workers["workers"])


async def test_a_supervisor_listens_whispers_and_barges_and_only_in_scope(
    playwright: Playwright, tmp_path: Path
) -> None:
    agent_mic = await asyncio.to_thread(write_tone_wav, tmp_path / "agent.wav", AGENT_HZ, 90.0, rate=48000)
    supervisor_mic = await asyncio.to_thread(write_tone_wav, tmp_path / "sup.wav", SUPERVISOR_HZ, 90.0, rate=48000)
    caller_tone = await asyncio.to_thread(write_tone_wav, tmp_path / "caller.wav", CALLER_HZ, 90.0)
    windows: dict[str, tuple[float, float]] = {}
    async with (
        BridgeProcess.configured(tmp_path, tenant=tenant(tmp_path)) as bridge,
        contextlib.AsyncExitStack() as stack,
    ):
        await bridge.wait_ready()
        agents_browser = await launch(playwright, agent_mic)
        stack.push_async_callback(agents_browser.close)
        supervisors_browser = await launch(playwright, supervisor_mic)
        stack.push_async_callback(supervisors_browser.close)
        alice = await signed_in(agents_browser, bridge, "alice", "alice-demo")
        await go_available(alice)
        sam = await supervisors_browser.new_context()
        board = await sam.new_page()
        await board.goto(bridge.http("/login"))
        await board.get_by_test_id("login-user").fill("sam")
        await board.get_by_test_id("login-password").fill("alice-demo")
        await board.get_by_test_id("login-submit").click()
        await board.wait_for_url("**/supervisor")
        await expect(board.get_by_test_id("connection-status")).to_contain_text("Connected", timeout=10_000)
        await expect(board.get_by_test_id("queue-waiting-acme")).to_have_text("0")

        caller = await stack.enter_async_context(
            await start_caller(bridge.uri("1001"), play=caller_tone, record=tmp_path / "heard.wav", max_seconds=90)
        )
        # The wallboard shows the waiting caller within a second of their joining the queue.
        await board.wait_for_function(
            "document.querySelector('[data-testid=queue-waiting-acme]')?.textContent === '1'", timeout=10_000
        )
        shown = time.monotonic()
        calls = await bridge.wait_for_calls(lambda cs: len(cs) == 1)
        call_id = calls[0]["id"]
        queued = next(e for e in (await bridge.call(call_id))["events"] if e["kind"] == "queued")["mono"]
        media_t0 = float((await caller.wait_for("media_active", timeout=15))["t"])

        await answer_call(alice, "Acme Furniture")
        await expect(board.get_by_test_id(f"call-row-{call_id}")).to_be_visible(timeout=5_000)
        await check_accessibility(board, "wallboard with a call")
        legs_before = await rtc_legs(bridge)

        # Out of scope, and a client that forbids listening: refused over HTTP and WebSocket, no leg.
        async with http_as(bridge, "gus") as gus:
            async with gus.get(bridge.http(f"/api/supervisor/calls/{call_id}")) as resp:
                assert resp.status == 403
                assert (await resp.json())["code"] == "forbidden"
            refused = await ws_join(gus, bridge, call_id)
            assert (refused["code"], refused["call_id"]) == ("forbidden", call_id)
        async with (
            http_as(bridge, "sam") as sam_http,
            sam_http.get(bridge.http(f"/api/supervisor/calls/{call_id}")) as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["agent"]["login"] == "alice"
        assert await rtc_legs(bridge) == legs_before, "a refused join opens no media leg"

        for mode in ("listen", "whisper", "barge"):
            await board.get_by_test_id(f"{mode}-{call_id}").click()
            await expect(board.get_by_test_id(f"call-mode-{call_id}")).to_have_text(mode.title(), timeout=5_000)
            start = time.monotonic()
            if mode == "listen":
                await wait_hears(board, CALLER_HZ, timeout=6.0, share=1e-3)
                await wait_hears(board, AGENT_HZ, timeout=6.0, share=1e-3)
                start = time.monotonic()
            await asyncio.sleep(3.0)
            windows[mode] = (start + SETTLE_S, time.monotonic())
            heard = {f: await hears(alice, f) for f in (SUPERVISOR_HZ, CALLER_HZ)}
            sup_heard = {f: await hears(board, f) for f in (CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ)}
            print(f"\n{mode}: the agent's page hears {heard}, the supervisor's {sup_heard} (shares of the signal)")
            assert sup_heard[CALLER_HZ] > HEARD, f"{mode}: the supervisor hears the caller"
            assert sup_heard[AGENT_HZ] > HEARD, f"{mode}: the supervisor hears the agent"
            if mode == "listen":
                assert heard[SUPERVISOR_HZ] < SILENT, "listen: the agent does not hear the supervisor"
            else:
                assert heard[SUPERVISOR_HZ] > HEARD, f"{mode}: the agent hears the supervisor"
        # Acme shows its agents who is listening.
        await expect(alice.get_by_test_id("supervision-banner")).to_have_text("Sam Lee has joined the call.")

        # Scoring from the wallboard: the score is saved against the call.
        await board.get_by_test_id("score-call").select_option(call_id)
        await board.get_by_test_id("score-value").select_option("4")
        await board.get_by_test_id("score-comment").fill("Calm and clear")
        await board.get_by_test_id("score-submit").click()
        await expect(board.get_by_test_id("score-status")).to_contain_text("Scored 4 for Acme Furniture")

        await board.get_by_test_id(f"leave-{call_id}").click()
        await expect(board.get_by_test_id(f"call-mode-{call_id}")).to_have_text("—", timeout=5_000)
        left = time.monotonic()
        await asyncio.sleep(2.5)
        windows["left"] = (left + SETTLE_S, time.monotonic())
        await expect(alice.get_by_test_id("supervision-banner")).to_be_hidden()
        await alice.get_by_test_id("hangup").click()
        result = await caller.wait(timeout=20)
        records = await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"])
        events = (await bridge.call(call_id))["events"]

        # The supervisor's reports page, from the same records: today's acme row, and a chart.
        await board.get_by_test_id("reports-link").click()
        await board.wait_for_url("**/reports")
        today = datetime.now(UTC).date().isoformat()
        row = board.get_by_test_id(f"report-row-acme-{today}")
        await expect(row).to_contain_text("acme", timeout=5_000)
        cells = await row.locator("td").all_text_contents()
        await check_accessibility(board, "reports")
        bars = await board.get_by_test_id("report-chart").locator("rect").count()

    print(f"\nwallboard showed the waiting caller {(shown - queued) * 1000:.0f} ms after they were queued")
    assert shown - queued < 1.0
    assert records[0]["outcome"] == "answered"
    assert cells[:5] == [today, "acme", "1", "1", "0"], cells  # offered, answered, abandoned
    assert bars == 2, "one answered and one abandoned bar for acme"
    supervision = [(e["kind"], e["data"].get("supervisor"), e["data"].get("mode")) for e in events]
    assert [s for s in supervision if s[0].startswith("supervisor")] == [
        ("supervisor_joined", "sam", "listen"),
        ("supervisor_mode", "sam", "whisper"),
        ("supervisor_mode", "sam", "barge"),
        ("supervisor_left", "sam", None),
    ]

    assert result.recording is not None
    samples, rate = read_wav(result.recording)

    def span(name: str) -> np.ndarray:
        start, end = windows[name]
        return samples[int((start - media_t0) * rate) : int((end - media_t0) * rate)]

    for quiet in ("listen", "whisper", "left"):
        assert not tone_present(span(quiet), rate, SUPERVISOR_HZ), f"{quiet}: the caller hears the supervisor"
        assert tone_present(span(quiet), rate, AGENT_HZ)
    assert tone_present(span("barge"), rate, SUPERVISOR_HZ), "barge: the caller hears the supervisor"
