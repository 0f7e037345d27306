"""From the agent's Answer click to the caller's audio arriving in the browser.

    .venv/bin/python bench/answer_latency.py [--calls 10] [--ring 1.0 0]

Starts a real `hotline serve` (one worker, SQLite), headless Debian Chromium
signed in as the demo agent, and, per call, a pjsua2 caller playing 440 Hz.
The agent answers after `--ring` seconds of ringing; the page notes the
click and the first 20 ms window in which 440 Hz dominates the received
audio (agent_client/README.md, `firstRemoteToneAt`). Prints the spread per
ring time.

With a ring of a second or more, the media leg was negotiated while the
phone rang (ICE and DTLS done, media held): answering only connects the
worker's conference bridge. A ring of 0 clicks the moment the screen-pop
shows, before negotiation can finish: the worst case.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from playwright.async_api import Page, async_playwright, expect

from audio import AGENT_HZ, CALLER_HZ, write_tone_wav
from harness.bridge import BridgeProcess
from harness.softphone import answer_call, answer_to_tone_ms, go_available, launch, signed_in
from harness.tenants import TENANTS
from peers.peer_process import start_caller


async def one_call(bridge: BridgeProcess, page: Page, caller_tone: Path, ring_s: float) -> float:
    async with await start_caller(bridge.uri("1001"), play=caller_tone, max_seconds=30) as caller:
        await answer_call(page, "Acme Furniture", ring_s=ring_s)
        for _ in range(100):
            latency = await answer_to_tone_ms(page, CALLER_HZ)
            if latency is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the caller's tone never reached the page")
        await page.get_by_test_id("hangup").click()
        await caller.wait(timeout=15)
    # Wrap-up, then available again for the next call.
    await expect(page.get_by_test_id("state-label")).to_have_text("Available", ignore_case=True, timeout=30_000)
    return latency


async def main(calls: int, rings: list[float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        caller_tone = write_tone_wav(work / "caller-440.wav", CALLER_HZ, 60.0)
        agent_tone = write_tone_wav(work / "agent-1000.wav", AGENT_HZ, 60.0, rate=48000)
        # Its clients' wrap-up is 1 s: the agent is available again soon after each call.
        tenant = TENANTS / "softphone.toml"
        async with BridgeProcess.configured(work, tenant=tenant, HOTLINE_LOG_LEVEL="warning") as bridge:
            await bridge.wait_ready()
            async with async_playwright() as playwright:
                browser = await launch(playwright, agent_tone)
                page = await signed_in(browser, bridge, "alice", "alice-demo")
                await go_available(page)
                for ring_s in rings:
                    latencies = [await one_call(bridge, page, caller_tone, ring_s) for _ in range(calls)]
                    ordered = sorted(latencies)
                    print(
                        f"ring {ring_s:.1f} s, {calls} calls: answer click → caller's audio in the page "
                        f"median {statistics.median(ordered):.0f} ms, min {ordered[0]:.0f}, max {ordered[-1]:.0f} "
                        f"({', '.join(f'{x:.0f}' for x in latencies)})"
                    )
                await browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--ring", type=float, nargs="+", default=[1.0, 0.0], help="seconds of ringing before Answer")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.ring))
