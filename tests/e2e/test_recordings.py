"""Recordings end to end: recorded by policy and on demand, compressed, played in the browser, refused and audited.

Real peers: `hotline serve`, a pjsua2 caller at 440 Hz and a Chromium agent
whose microphone plays 1000 Hz. Acme records every call; Globex records on
demand, and the agent starts it mid-call from the softphone. Afterwards the
stored files are fetched over HTTP and decoded: the caller's tone must be on
the left channel and the agent's on the right. A supervisor's Chromium plays
the recording from the wallboard; a supervisor of another client and an
agent (the one who took the call) are refused (403); every attempt is in the recording's audit.
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from playwright.async_api import Playwright, expect

from audio import AGENT_HZ, CALLER_HZ, tone_present, write_silence_wav, write_tone_wav
from harness.bridge import BridgeProcess
from harness.softphone import answer_call, go_available, launch, signed_in
from harness.tenants import SAM_AND_GUS, SUPERVISOR_PASSWORD, TENANTS
from peers.peer_process import start_caller
from telephony.recording_codec import decode_call

pytestmark = [pytest.mark.peers]

PASSWORD = SUPERVISOR_PASSWORD
SUPERVISORS = SAM_AND_GUS
RATE = 8000


def tenant(tmp_path: Path) -> Path:
    text = (TENANTS / "softphone.toml").read_text()
    text = text.replace('greeting = { text = "Acme." }\n', 'greeting = { text = "Acme." }\nrecording = "always"\n')
    text = text.replace(
        'greeting = { text = "Globex." }\n', 'greeting = { text = "Globex." }\nrecording = "on_demand"\n'
    )
    path = tmp_path / "recordings.toml"
    path.write_text(text + SUPERVISORS)
    return path


def basic(login: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


async def fetch(bridge: BridgeProcess, path: str, login: str, password: str = PASSWORD) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(bridge.http(path), headers=basic(login, password)) as r:
        return r.status, await r.read()


async def stored(bridge: BridgeProcess, call_id: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = (await bridge.call(call_id))["events"]
        found = [e["data"] for e in events if e["kind"] == "recording_stored"]
        if found:
            return dict(found[0])
        await asyncio.sleep(0.3)
    raise AssertionError(f"call {call_id} has no stored recording after {timeout} s")


async def one_call(
    bridge: BridgeProcess,
    agent: Any,
    did: str,
    brand: str,
    tone: Path,
    talk_s: float,
    *,
    record_after_s: float | None = None,
    muted_s: float = 0.0,
) -> str:
    known = {c["id"] for c in await bridge.calls()}
    async with await start_caller(bridge.uri(did), play=tone, max_seconds=60) as caller:
        await answer_call(agent, brand)
        await expect(agent.get_by_test_id("call-status")).to_contain_text("onnected", timeout=5_000)
        if record_after_s is not None:
            await expect(agent.get_by_test_id("recording-indicator")).to_be_hidden()
            await asyncio.sleep(record_after_s)
            await agent.get_by_test_id("record").click()
            await expect(agent.get_by_test_id("recording-indicator")).to_be_visible(timeout=5_000)
            await expect(agent.get_by_test_id("record")).to_be_hidden()
        else:
            await expect(agent.get_by_test_id("recording-indicator")).to_be_visible()
            await expect(agent.get_by_test_id("record")).to_be_hidden()
        await asyncio.sleep(talk_s)
        if muted_s:
            await agent.get_by_test_id("mute").click()
            await expect(agent.get_by_test_id("mute")).to_have_attribute("aria-pressed", "true")
            await asyncio.sleep(muted_s)
        await agent.get_by_test_id("hangup").click()
        await caller.wait(timeout=15)
    calls = await bridge.wait_for_calls(lambda cs: len(cs) > len(known) and all(c["outcome"] for c in cs))
    await expect(agent.get_by_test_id("state-label")).to_have_text("Available", ignore_case=True, timeout=10_000)
    (new,) = [c for c in calls if c["id"] not in known]
    return str(new["id"])


def channels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    left, right = decode_call(path)
    return left.astype(np.float64) / 32768, right.astype(np.float64) / 32768


async def test_recordings_by_policy_and_on_demand_play_each_side_and_are_refused_out_of_scope(
    playwright: Playwright, tmp_path: Path
) -> None:
    mic = await asyncio.to_thread(write_tone_wav, tmp_path / "agent.wav", AGENT_HZ, 60.0, rate=48000)
    tone = await asyncio.to_thread(write_tone_wav, tmp_path / "caller.wav", CALLER_HZ, 60.0)
    async with BridgeProcess.configured(tmp_path, tenant=tenant(tmp_path)) as bridge:
        await bridge.wait_ready()
        browser = await launch(playwright, mic)
        try:
            # Alice serves acme; Bob's shift is Globex's.
            alice = await signed_in(browser, bridge, "alice", "alice-demo")
            await go_available(alice)
            bob = await signed_in(browser, bridge, "bob", "bob-demo")
            await go_available(bob)
            always = await one_call(bridge, alice, "1001", "Acme Furniture", tone, 4.0)
            on_demand = await one_call(bridge, bob, "1002", "Globex Insurance", tone, 3.0, record_after_s=2.0)
            policy_file, demand_file = await stored(bridge, always), await stored(bridge, on_demand)

            # The wallboard lists both, and Chromium plays the Ogg Opus file it serves.
            sam = await (await browser.new_context()).new_page()
            await sam.goto(bridge.http("/login"))
            await sam.get_by_test_id("login-user").fill("sam")
            await sam.get_by_test_id("login-password").fill(PASSWORD)
            await sam.get_by_test_id("login-submit").click()
            await sam.wait_for_url("**/supervisor")
            player = sam.get_by_test_id(f"recording-audio-{always}")
            await expect(player).to_be_attached(timeout=10_000)
            await expect(sam.get_by_test_id(f"recording-audio-{on_demand}")).to_be_attached()
            played = await player.evaluate(
                """(audio) => new Promise((resolve) => {
                    audio.addEventListener('error', () => resolve({error: audio.error && audio.error.code}));
                    audio.addEventListener('canplaythrough', () => resolve({duration: audio.duration}), {once: true});
                    audio.preload = 'auto';
                    audio.load();
                })"""
            )
        finally:
            await browser.close()

        status_sam, body = await fetch(bridge, f"/api/recordings/{always}", "sam")
        status_demand, demand_body = await fetch(bridge, f"/api/recordings/{on_demand}", "sam")
        status_gus, refusal = await fetch(bridge, f"/api/recordings/{always}", "gus")
        status_agent, _ = await fetch(bridge, f"/api/recordings/{always}", "alice", "alice-demo")
        _, audit = await bridge.get_json(f"/api/recordings/{always}/access")

    print(f"\nstored: {policy_file} and {demand_file}; Chromium: {played}")
    assert status_sam == status_demand == 200
    assert body[:4] == b"OggS"
    assert status_gus == 403
    assert b"outside your scope" in refusal
    assert status_agent == 403
    assert played.get("duration") == pytest.approx(policy_file["duration_ms"] / 1000, abs=0.3)

    (tmp_path / "always.ogg").write_bytes(body)
    (tmp_path / "demand.ogg").write_bytes(demand_body)
    left, right = await asyncio.to_thread(channels, tmp_path / "always.ogg")
    assert len(left) / RATE == pytest.approx(4.0, abs=1.0)
    talk = slice(RATE, len(left) - RATE // 2)  # the agent's first second: the browser's capture starting
    assert tone_present(left[talk], RATE, CALLER_HZ)
    assert not tone_present(left[talk], RATE, AGENT_HZ)
    assert tone_present(right[talk], RATE, AGENT_HZ)
    assert not tone_present(right[talk], RATE, CALLER_HZ)
    left, right = await asyncio.to_thread(channels, tmp_path / "demand.ogg")
    assert len(left) / RATE == pytest.approx(3.0, abs=0.8), "from the click, not from the answer"
    assert tone_present(left[RATE // 2 : -RATE // 2], RATE, CALLER_HZ)
    assert tone_present(right[RATE // 2 : -RATE // 2], RATE, AGENT_HZ)

    attempts = [(a["actor"], a["granted"]) for a in reversed(audit["accesses"])]
    assert ("sam", True) in attempts[:-2], "the browser's requests come first"
    assert attempts[-2:] == [("gus", False), ("alice", False)], "the agent who took the call included"
    assert {actor for actor, _ in attempts} == {"sam", "gus", "alice"}


CARD = """
[[rate_cards]]
client = "acme"
currency = "EUR"
tiers = [{ min_s = 0, max_s = 5, rate = "0.50" }, { min_s = 5, rate = "1.20" }]
"""


async def test_a_call_padded_with_silence_past_a_tier_boundary_is_flagged_and_paid_as_spoken(
    playwright: Playwright, tmp_path: Path
) -> None:
    """The caller is silent; the agent talks 4 s, then mutes and lets the clock run past 5 s."""
    path = tenant(tmp_path)
    path.write_text(path.read_text() + CARD)
    mic = await asyncio.to_thread(write_tone_wav, tmp_path / "agent.wav", AGENT_HZ, 60.0, rate=48000)
    quiet = await asyncio.to_thread(write_silence_wav, tmp_path / "quiet.wav", 60.0)
    async with BridgeProcess.configured(tmp_path, tenant=path) as bridge:
        await bridge.wait_ready()
        browser = await launch(playwright, mic)
        try:
            alice = await signed_in(browser, bridge, "alice", "alice-demo")
            await go_available(alice)
            padded = await one_call(bridge, alice, "1001", "Acme Furniture", quiet, 4.0, muted_s=3.5)
            spoken = await one_call(bridge, alice, "1001", "Acme Furniture", quiet, 7.5)
            voices = [await stored_voice(bridge, call_id) for call_id in (padded, spoken)]
            today = datetime.now(UTC).date().isoformat()
            status, statement = await bridge.get_json(
                f"/api/pay/statement?from={today}&to={today}", auth=basic("alice", "alice-demo")["Authorization"]
            )
        finally:
            await browser.close()
    assert status == 200, statement
    (mine,) = statement["statements"]
    rows = {row["call"]: row for row in mine["rows"] if row["call"]}
    print(f"\nvoice figures: {voices}\nrows: {[rows[padded], rows[spoken]]}")
    assert float(rows[padded]["talk_s"]) > 5.5, "the clock ran past the boundary"
    assert voices[0]["trailing_silence_s"] >= 2.5
    assert (rows[padded]["tier"], rows[padded]["amount"]) == ("0-5 s", "0.50")
    assert "padded" in rows[padded]["notes"]
    assert (rows[spoken]["tier"], rows[spoken]["amount"]) == ("5+ s", "1.20")
    assert "padded" not in rows[spoken]["notes"]


async def stored_voice(bridge: BridgeProcess, call_id: str) -> dict[str, Any]:
    await stored(bridge, call_id)
    events = (await bridge.call(call_id))["events"]
    return dict(next(e["data"] for e in events if e["kind"] == "voice_analysed"))
