"""The queue engine live: two Chromium agents, three pjsua2 callers, spoken position announcements.

Real peers everywhere: `hotline serve` on a tenant whose queue announces
positions, three pjsua2 callers in their own processes recording what they
hear, and headless Chromium agents. Which announcement each caller heard,
and when, is found in the caller's recording by cross-correlating it with
the same words synthesised here by espeak-ng (deterministic for a given
text and voice): the record's `announced` events say what was decided, the
recordings say what was heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Playwright, expect

from audio import AGENT_HZ, CALLER_HZ, read_wav, tone_present, write_tone_wav
from harness.bridge import BridgeProcess
from harness.softphone import answer_call, launch, signed_in
from harness.tenants import TENANTS
from peers.peer_process import PeerProcess, start_caller
from telephony.media_assets import synthesize_greeting

pytestmark = [pytest.mark.peers]

RATE = 8000
# Positions said on joining, then every 15 s.
QUEUE = """
[[queues]]
id = "acme"
client = "acme"
announcements = { position = true, position_every_s = 15 }
"""


def found_at(recording: np.ndarray, prompt: np.ndarray) -> tuple[float, float]:
    """Where `prompt` best matches in `recording` (seconds) and how well (normalised correlation, 0-1)."""
    n = len(recording) + len(prompt)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(recording, size) * np.conj(np.fft.rfft(prompt, size)), size)[: len(recording)]
    # Each lag's correlation over the energy of the recording under the prompt there.
    running = np.concatenate([[0.0], np.cumsum(recording.astype(np.float64) ** 2)])
    ends = np.minimum(np.arange(len(recording)) + len(prompt), len(recording))
    energy = running[ends] - running[: len(recording)]
    score = np.abs(corr) / (np.sqrt(np.maximum(energy, 1e-12)) * np.linalg.norm(prompt))
    lag = int(np.argmax(score))
    return lag / RATE, float(score[lag])


PIECE_S = 0.5


def heard_at(recording: np.ndarray, prompt: np.ndarray) -> tuple[float, float]:
    """Where `prompt` was heard in `recording` (seconds) and how well (the median of its pieces' matches).

    Matched half a second at a time: under load the caller's jitter buffer drops or
    stretches a frame here and there, which shifts the rest of a long prompt and
    spoils one whole-prompt correlation, but not each piece's. The pieces must be
    found in the prompt's order, each within 0.3 s of where the first puts it.
    """
    step = int(PIECE_S * RATE)
    pieces = [(i, prompt[i : i + step]) for i in range(0, len(prompt) - step // 2, step)]
    # Silent pieces (between words) match anything equally badly: leave them out.
    loud = [(i, piece) for i, piece in pieces if np.sqrt(np.mean(piece**2)) > 0.05 * np.max(np.abs(prompt))]
    found = [(found_at(recording, piece), i / RATE) for i, piece in loud]
    start = found[0][0][0] - found[0][1]
    for (at, _), offset in found:
        assert abs(at - offset - start) < 0.3, f"a piece of the prompt heard out of place: {found}"
    return start, float(np.median([score for (_, score), _ in found]))


async def announced(bridge: BridgeProcess, call_id: str) -> list[dict[str, Any]]:
    events = (await bridge.call(call_id))["events"]
    return [e["data"] for e in events if e["kind"] == "announced"]


async def wait_announced(bridge: BridgeProcess, call_id: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(await announced(bridge, call_id)) < count:
        assert time.monotonic() < deadline, f"{call_id}: fewer than {count} announcements"
        await asyncio.sleep(0.2)


async def test_positions_are_announced_in_order_and_the_third_caller_gets_the_first_freed_agent(
    playwright: Playwright, tmp_path: Path
) -> None:
    tenant = tmp_path / "queue.toml"
    tenant.write_text((TENANTS / "softphone.toml").read_text() + QUEUE)
    mic = await asyncio.to_thread(write_tone_wav, tmp_path / "agent-1000.wav", AGENT_HZ, 90.0, rate=48000)
    caller_tone = await asyncio.to_thread(write_tone_wav, tmp_path / "caller-440.wav", CALLER_HZ, 90.0)
    async with BridgeProcess.configured(tmp_path, tenant=tenant) as bridge, contextlib.AsyncExitStack() as stack:
        await bridge.wait_ready()
        browser = await launch(playwright, mic)
        stack.push_async_callback(browser.close)
        alice = await signed_in(browser, bridge, "alice", "alice-demo")
        carol = await signed_in(browser, bridge, "carol", "alice-demo")
        callers: list[PeerProcess] = []
        ids: list[str] = []
        for n in range(3):
            caller = await start_caller(
                bridge.uri("1001"), play=caller_tone, record=tmp_path / f"caller{n}.wav", max_seconds=90
            )
            callers.append(await stack.enter_async_context(caller))
            calls = await bridge.wait_for_calls(lambda cs, n=n: len(cs) == n + 1)
            ids.append(next(c["id"] for c in calls if c["id"] not in ids))
            await wait_announced(bridge, ids[-1], 1)
        media_t0 = [float((await c.wait_for("media_active", timeout=15))["t"]) for c in callers]
        await asyncio.sleep(4.0)  # after the greeting, the words take a few seconds to say

        # Now the agents come in: alice takes the first caller, carol the second.
        # (Each rings the moment they are available: callers are waiting.)
        await alice.get_by_test_id("go-available").click()
        await answer_call(alice, "Acme Furniture")
        await carol.get_by_test_id("go-available").click()
        await answer_call(carol, "Acme Furniture")
        # The third caller moves up to first, and is told so at the next announcement.
        await wait_announced(bridge, ids[2], 2)
        await asyncio.sleep(6.0)
        # Carol frees up first, though alice has been on her call longer: the third caller is carol's.
        await carol.get_by_test_id("hangup").click()
        await answer_call(carol, "Acme Furniture")
        await expect(carol.get_by_test_id("call-status")).to_contain_text("onnected", timeout=5_000)
        await asyncio.sleep(2.0)
        for page in (alice, carol):
            await page.get_by_test_id("hangup").click()
        results = [await caller.wait(timeout=20) for caller in callers]
        records = await bridge.wait_for_calls(lambda cs: len(cs) == 3 and all(c["outcome"] for c in cs))
        by_id = {r["id"]: r for r in records}
        said = [await announced(bridge, call_id) for call_id in ids]
        timelines = [(await bridge.call(call_id))["events"] for call_id in ids]

    # What was decided: positions 1, 2, 3 on joining; the third caller later told they are first.
    assert [s[0]["position"] for s in said] == [1, 2, 3]
    assert [s["position"] for s in said[2]] == [3, 1]
    assert said[2][0]["text"] == "You are third in line."
    assert said[2][1]["text"].startswith("You are first in line. Your estimated wait is about ")

    # Who answered whom, and the waits the records carry.
    assert [by_id[i]["answered_by"] for i in ids] == ["alice", "carol", "carol"]
    assert all(by_id[i]["outcome"] == "answered" for i in ids)
    answered_at = []
    for call_id, events in zip(ids, timelines, strict=True):
        queued = next(e for e in events if e["kind"] == "queued")["mono"]
        answered_at.append(next(e for e in events if e["kind"] == "answered")["mono"])
        assert by_id[call_id]["queue_wait_s"] == pytest.approx(answered_at[-1] - queued, abs=0.05)
    waits = [by_id[i]["queue_wait_s"] for i in ids]
    assert waits[2] > 15.0 > max(waits[:2])
    print(f"\nqueue waits {[round(w, 1) for w in waits]} s")

    # What was heard: each announcement's words, found in the caller's recording, in order, never two
    # at once, all before the agent answered; then the agent, and not a word over them.
    cache = tmp_path / "prompts"

    def prompt_of(text: str) -> np.ndarray:
        path = synthesize_greeting(text, cache)
        assert path is not None
        return read_wav(path)[0]

    def verify() -> None:
        for n, result in enumerate(results):
            assert result.recording is not None
            samples, rate = read_wav(result.recording)
            assert rate == RATE
            heard: list[tuple[float, float, float]] = []
            for data in said[n]:
                prompt = prompt_of(data["text"])
                at, score = heard_at(samples, prompt)
                heard.append((at, at + len(prompt) / RATE, score))
                assert score > 0.6, f"caller {n + 1} did not hear {data['text']!r} (best match {score:.2f})"
            print(f"caller {n + 1} heard (start s, end s, match) {[tuple(round(x, 2) for x in h) for h in heard]}")
            starts = [start for start, _, _ in heard]
            assert starts == sorted(starts), f"caller {n + 1}: announcements out of order {heard}"
            for (_, end, _), (start, _, _) in itertools.pairwise(heard):
                assert start >= end - 0.05, f"caller {n + 1}: two announcements overlap {heard}"
            answered = answered_at[n] - media_t0[n]
            assert heard[-1][1] < answered + 0.1, f"caller {n + 1}: an announcement over the agent {heard}"
            talk = samples[int((answered + 0.5) * RATE) : int((answered + 1.5) * RATE)]
            assert tone_present(talk, RATE, AGENT_HZ)
        # The words matter: where the third caller heard "third", "first" matches worse.
        samples = read_wav(results[2].recording)[0]  # type: ignore[arg-type]
        third_at, _ = heard_at(samples, prompt_of(said[2][0]["text"]))
        assert third_at < heard_at(samples, prompt_of(said[2][1]["text"]))[0]
        wrong = prompt_of("You are first in line.")
        start = int(third_at * RATE)
        _, wrong_score = found_at(samples[start : start + len(wrong) + RATE], wrong)
        assert wrong_score < 0.5, f"'first' matches where 'third' was said ({wrong_score:.2f})"

    await asyncio.to_thread(verify)
