"""The softphone end to end: a pjsua2 caller at 440 Hz, Chromium agents at 1000 Hz.

Real peers everywhere: `hotline serve`, a pjsua2 caller in its own process
recording what it hears, and headless Debian Chromium driven by Playwright
with a fake microphone playing the agent's tone. Who hears what is decided by
analysing the caller's recording and the audio the agent's page receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, Page, Playwright, expect

from audio import AGENT_HZ, CALLER_HZ, read_wav, tone_present, tone_ratio, write_tone_wav
from harness.bridge import BridgeProcess
from harness.softphone import answer_call, answer_to_tone_ms, go_available, hears, launch, signed_in, wait_hears
from harness.tenants import TENANTS
from peers.peer_process import PeerProcess, start_caller
from telephony.media_assets import HOLD_MUSIC_NOTES_HZ

pytestmark = [pytest.mark.peers]

SOFTPHONE_TENANT = TENANTS / "softphone.toml"


@pytest.fixture
def tones(tmp_path: Path) -> dict[str, Path]:
    return {
        "caller": write_tone_wav(tmp_path / "caller-440.wav", CALLER_HZ, 60.0),
        "agent": write_tone_wav(tmp_path / "agent-1000.wav", AGENT_HZ, 60.0, rate=48000),
    }


def music_share(samples: np.ndarray, rate: int) -> float:
    return sum(tone_ratio(samples, rate, f, bandwidth_hz=12) for f in HOLD_MUSIC_NOTES_HZ)


class CallerTrack:
    """Maps the test's monotonic clock onto the caller's recording."""

    def __init__(self, caller: PeerProcess) -> None:
        self.caller = caller

    async def media_started(self) -> float:
        event = await self.caller.wait_for("media_active", timeout=15)
        return float(event["t"])

    def window(self, samples: np.ndarray, rate: int, media_t0: float, start: float, end: float) -> np.ndarray:
        return samples[int((start - media_t0) * rate) : int((end - media_t0) * rate)]


@contextlib.asynccontextmanager
async def one_agent_floor(
    playwright: Playwright, tones: dict[str, Path], tmp_path: Path, **env: str
) -> AsyncIterator[tuple[BridgeProcess, Browser, Page]]:
    """A bridge on the softphone tenant, Chromium, and alice signed in and available."""
    async with BridgeProcess.configured(tmp_path, tenant=SOFTPHONE_TENANT, **env) as bridge:
        await bridge.wait_ready()
        browser = await launch(playwright, tones["agent"])
        try:
            page = await signed_in(browser, bridge, "alice", "alice-demo")
            await go_available(page)
            yield bridge, browser, page
        finally:
            await browser.close()


async def recording_caller(
    bridge: BridgeProcess, tones: dict[str, Path], tmp_path: Path, **options: Any
) -> PeerProcess:
    """A pjsua2 caller dialling 1001, playing 440 Hz and recording what it hears to caller.wav."""
    return await start_caller(
        bridge.uri("1001"), play=tones["caller"], record=tmp_path / "caller.wav", max_seconds=60, **options
    )


async def test_agent_answers_and_both_sides_hear_each_other(
    playwright: Playwright, tones: dict[str, Path], tmp_path: Path
) -> None:
    async with one_agent_floor(playwright, tones, tmp_path) as (bridge, _browser, page):
        async with await recording_caller(bridge, tones, tmp_path, from_user="0612345678") as caller:
            track = CallerTrack(caller)
            media_t0 = await track.media_started()
            await expect(page.get_by_test_id("caller-number")).to_contain_text("0612345678")
            # A person answers after a ring or two; the media leg was negotiated meanwhile.
            answered = await answer_call(page, "Acme Furniture", ring_s=1.0)
            assert await page.evaluate("window.hotlineTest.peerState()") == "connected", "negotiated while ringing"
            await wait_hears(page, CALLER_HZ)
            latency_ms = await answer_to_tone_ms(page, CALLER_HZ)
            assert latency_ms is not None
            print(f"\nanswer click (after 1 s of ringing) -> caller's audio in the browser: {latency_ms:.0f} ms")
            await asyncio.sleep(5.0)
            assert await hears(page, CALLER_HZ) > 0.3, "the agent hears the caller"
            assert await hears(page, AGENT_HZ) < 0.05, "the agent doesn't hear herself"
            hung_up = time.monotonic()
            await page.get_by_test_id("hangup").click()
            result = await caller.wait(timeout=15)
        assert result.recording is not None
        samples, rate = read_wav(result.recording)
        talk = track.window(samples, rate, media_t0, answered + 0.5, hung_up - 0.3)
        assert tone_present(talk, rate, AGENT_HZ), "the caller hears the agent"
        assert music_share(talk, rate) < 0.2, "and no music over the conversation"

        records = await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"])
        record = records[0]
        assert (record["outcome"], record["answered_by"], record["ended_by"]) == ("answered", "alice", "agent")
        assert record["talk_s"] == pytest.approx(hung_up - answered, abs=0.3)
        kinds = [e["kind"] for e in (await bridge.call(record["id"]))["events"]]
        assert kinds[kinds.index("queued") :] == ["queued", "offered", "ringing", "answered", "ended"] or (
            "greeting_started" in kinds
        )
        assert latency_ms < 1000
        bridge.assert_loop_never_blocked()


async def test_hold_plays_music_and_mute_silences_the_agent(
    playwright: Playwright, tones: dict[str, Path], tmp_path: Path
) -> None:
    async with one_agent_floor(playwright, tones, tmp_path) as (bridge, _browser, page):
        async with await recording_caller(bridge, tones, tmp_path) as caller:
            track = CallerTrack(caller)
            media_t0 = await track.media_started()
            answered = await answer_call(page, "Acme Furniture")
            await wait_hears(page, CALLER_HZ)
            await asyncio.sleep(1.5)
            held = time.monotonic()
            await page.get_by_test_id("hold").click()
            await expect(page.get_by_test_id("call-status")).to_contain_text("hold", ignore_case=True)
            await asyncio.sleep(3.0)
            unheld = time.monotonic()
            await page.get_by_test_id("hold").click()
            await asyncio.sleep(1.5)
            muted = time.monotonic()
            await page.get_by_test_id("mute").click()
            await asyncio.sleep(2.5)
            unmuted = time.monotonic()
            await page.get_by_test_id("mute").click()
            await asyncio.sleep(1.5)
            await page.get_by_test_id("hangup").click()
            result = await caller.wait(timeout=15)
        assert result.recording is not None
        samples, rate = read_wav(result.recording)
        during_hold = track.window(samples, rate, media_t0, held + 0.5, unheld - 0.2)
        assert not tone_present(during_hold, rate, AGENT_HZ), "on hold the caller doesn't hear the agent"
        assert music_share(during_hold, rate) > 0.5, "on hold the caller hears the music"
        after_hold = track.window(samples, rate, media_t0, unheld + 0.5, muted - 0.1)
        assert tone_present(after_hold, rate, AGENT_HZ)
        during_mute = track.window(samples, rate, media_t0, muted + 0.5, unmuted - 0.1)
        assert not tone_present(during_mute, rate, AGENT_HZ), "muted, the caller doesn't hear the agent"
        after_mute = track.window(samples, rate, media_t0, unmuted + 0.5, unmuted + 1.3)
        assert tone_present(after_mute, rate, AGENT_HZ)

        records = await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"])
        record = records[0]
        assert record["hold_s"] == pytest.approx(unheld - held, abs=0.3)
        kinds = [e["kind"] for e in (await bridge.call(record["id"]))["events"]]
        assert kinds.count("hold") == 1
        assert kinds.count("unhold") == 1
        assert answered < held


def tenant_with_ending_slot(tmp_path: Path, ends_in_s: float) -> Path:
    """The softphone tenant plus dave (acme), whose only slot ends in `ends_in_s` seconds (offers stop 10 s before)."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (now + timedelta(seconds=ends_in_s)).strftime("%Y-%m-%dT%H:%M:%S")
    text = (
        SOFTPHONE_TENANT.read_text()
        + f"""
[[agents]]
login = "dave"
name = "Dave Roux"
password_hash = "$argon2id$v=19$m=65536,t=3,p=4$evHPEdnDksQN//VzfmSbzw$02ZtIsxcCKJSfkV9gp9xgvL+8mxQnRbJteVAiNE2Fw0"
serves = [{{ client = "acme" }}]

[[shifts]]
agent = "dave"
timezone = "UTC"
dated = [{{ start = "{start}", end = "{end}" }}]

[shift_rules]
last_offer_before_end_s = 10
"""
    )
    path = tmp_path / "softphone-slot.toml"
    path.write_text(text)
    return path


async def test_shift_rules_decide_who_rings(playwright: Playwright, tones: dict[str, Path], tmp_path: Path) -> None:
    tenant = tenant_with_ending_slot(tmp_path, ends_in_s=25)
    async with BridgeProcess.configured(tmp_path, tenant=tenant) as bridge:
        await bridge.wait_ready()
        browser = await launch(playwright, tones["agent"])
        bob = await signed_in(browser, bridge, "bob", "bob-demo")
        dave = await signed_in(browser, bridge, "dave", "alice-demo")
        await go_available(bob)
        await go_available(dave)
        # Bob serves acme, but his slot covers globex only: never rung for acme.
        async with await start_caller(bridge.uri("1001"), hangup_after=4.0, max_seconds=30) as first:
            await expect(dave.get_by_test_id("brand-label")).to_have_text("Acme Furniture", timeout=10_000)
            await dave.get_by_test_id("decline").click()
            await first.wait(timeout=20)
        await expect(bob.get_by_test_id("brand-label")).not_to_have_text("Acme Furniture")
        # Dave's slot ends: he is no longer offered new calls.
        await expect(dave.get_by_test_id("go-available-why")).to_contain_text("no booked slot", timeout=40_000)
        await expect(dave.get_by_test_id("go-available")).to_be_disabled()
        async with await start_caller(bridge.uri("1001"), hangup_after=5.0, max_seconds=30) as second:
            await asyncio.sleep(4.0)
            assert await dave.get_by_test_id("brand-label").text_content() in ("", None, "Acme Furniture")
            assert not await dave.evaluate("window.hotlineTest.ringing()")
            assert not await bob.evaluate("window.hotlineTest.ringing()")
            await second.wait(timeout=20)
        calls = await bridge.wait_for_calls(lambda cs: len(cs) == 2 and all(c["outcome"] for c in cs))
        offered_to: list[Any] = []
        for call in calls:
            events = (await bridge.call(call["id"]))["events"]
            offered_to += [e["data"].get("agent") for e in events if e["kind"] == "offered"]
        assert offered_to == ["dave"], "bob was never offered acme's calls; dave only while on shift"
        await browser.close()


async def test_closing_the_ringing_page_rings_the_next_agent_within_a_second(
    playwright: Playwright, tones: dict[str, Path], tmp_path: Path
) -> None:
    async with one_agent_floor(playwright, tones, tmp_path) as (bridge, browser, alice):
        await asyncio.sleep(1.0)  # alice has been idle longest: she rings first
        carol = await signed_in(browser, bridge, "carol", "alice-demo")
        await go_available(carol)
        async with await start_caller(bridge.uri("1001"), hangup_after=3.0, max_seconds=30) as caller:
            await expect(alice.get_by_test_id("brand-label")).to_have_text("Acme Furniture", timeout=10_000)
            closed_at = time.monotonic()
            await alice.context.close()
            await expect(carol.get_by_test_id("brand-label")).to_have_text("Acme Furniture", timeout=1_000)
            print(f"\nsecond agent rang {time.monotonic() - closed_at:.2f} s after the first page closed")
            await carol.get_by_test_id("answer").click()
            await caller.wait(timeout=20)
        calls = await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"])
        assert calls[0]["answered_by"] == "carol"


async def test_a_dropped_websocket_reattaches_and_audio_resumes(
    playwright: Playwright, tones: dict[str, Path], tmp_path: Path
) -> None:
    async with one_agent_floor(playwright, tones, tmp_path) as (bridge, _browser, page):
        async with await recording_caller(bridge, tones, tmp_path) as caller:
            await answer_call(page, "Acme Furniture")
            await wait_hears(page, CALLER_HZ)
            dropped = time.monotonic()
            await page.evaluate("window.hotlineTest.dropSocket()")
            await expect(page.get_by_test_id("connection-status")).to_contain_text("onnected", timeout=5_000)
            await wait_hears(page, CALLER_HZ, timeout=5.0)
            await expect(page.get_by_test_id("call-status")).to_contain_text("onnected", timeout=5_000)
            print(f"\nreconnected and hearing the caller {time.monotonic() - dropped:.2f} s after the drop")
            await page.get_by_test_id("hangup").click()
            await caller.wait(timeout=15)
        calls = await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"])
        assert (calls[0]["outcome"], calls[0]["answered_by"]) == ("answered", "alice")
        kinds = [e["kind"] for e in (await bridge.call(calls[0]["id"]))["events"]]
        assert "agent_lost" not in kinds


async def test_an_agent_lost_past_the_grace_period_sends_the_caller_to_music_then_the_next_agent(
    playwright: Playwright, tones: dict[str, Path], tmp_path: Path
) -> None:
    async with one_agent_floor(playwright, tones, tmp_path, HOTLINE_AGENT_GRACE="2") as (bridge, browser, alice):
        async with await recording_caller(bridge, tones, tmp_path) as caller:
            track = CallerTrack(caller)
            media_t0 = await track.media_started()
            answered_first = await answer_call(alice, "Acme Furniture")
            await wait_hears(alice, CALLER_HZ)
            await asyncio.sleep(1.0)
            # The agent's computer dies: no WebSocket, no media, no goodbye.
            lost = time.monotonic()
            await alice.context.close()
            await asyncio.sleep(4.0)  # past the 2 s grace period
            carol = await signed_in(browser, bridge, "carol", "alice-demo")
            # The waiting call rings her the moment she is available.
            await carol.get_by_test_id("go-available").click()
            answered_again = await answer_call(carol, "Acme Furniture")
            await wait_hears(carol, CALLER_HZ)
            await asyncio.sleep(1.5)
            hung_up = time.monotonic()
            await carol.get_by_test_id("hangup").click()
            result = await caller.wait(timeout=15)
        assert result.recording is not None
        samples, rate = read_wav(result.recording)
        # From the grace period's end until carol answers, the caller hears music, not silence.
        waiting = track.window(samples, rate, media_t0, lost + 2.5, answered_again - 0.2)
        assert music_share(waiting, rate) > 0.5, "back in the queue, the caller hears the music"
        assert tone_present(
            track.window(samples, rate, media_t0, answered_again + 0.5, answered_again + 1.5), rate, AGENT_HZ
        )

        records = await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"])
        record = records[0]
        assert (record["outcome"], record["answered_by"]) == ("answered", "carol")
        # Talk time: alice's until the grace period ran out, then carol's; the wait between is queue time.
        expected_talk = (lost + 2.0 - answered_first) + (hung_up - answered_again)
        assert record["talk_s"] == pytest.approx(expected_talk, abs=0.5)
        events = (await bridge.call(record["id"]))["events"]
        kinds = [(e["kind"], e["data"].get("agent")) for e in events if e["kind"] in ("answered", "agent_lost")]
        assert kinds == [("answered", "alice"), ("agent_lost", "alice"), ("answered", "carol")]
