"""N simultaneous bridged calls on one media worker: CPU per call, late and lost frames.

    .venv/bin/python bench/bridged_calls.py [--calls 1 2 4] [--seconds 20] [--codec PCMU|opus]

For each N, starts a real media worker (as `hotline serve` does, without
asyncio's debug mode), N pjsua2 callers in their own process playing 440 Hz,
and N aiortc agents (the browser's side of the WebRTC leg) each playing its own
tone. Every call is bridged, then the bench measures for `--seconds`:

- the worker's CPU, as a share of one core, in all and per call;
- the frames each agent received against the 50 per second it should get
  (lost = missing), and the worker's own counters: frames sent late to the
  agent (a send deadline missed by more than 20 ms), ring underruns (a frame
  due with nothing to send) and overruns (oldest frames dropped);
- the time from `bridge` to the worker sending the caller's first frame to
  the agent, and to the caller's tone reaching the agent (after aiortc's
  receive jitter buffer, which holds about 80 ms; Chrome's adapts lower).

One worker holds at most 4 calls (pjsua2's compiled limit), so N <= 4; a
bridge with more calls has more workers, each measured by this.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "worker"))

import aioice.ice
from worker_peers import Media, agents, cpu_meter, running_worker

from audio import CALLER_HZ, write_tone_wav
from peers.peer_process import start_caller
from telephony.media_assets import ensure_fallback_greeting, ensure_hold_music

AGENT_TONES = [1000.0, 1250.0, 1700.0, 2000.0]
FRAMES_PER_S = 50


def media_in(cache: Path) -> Media:
    return Media(
        greeting=ensure_fallback_greeting(cache),
        music=ensure_hold_music(cache),
        caller_tone=write_tone_wav(cache / "caller440.wav", CALLER_HZ, 1.0),
    )


async def run(n: int, seconds: float, codec: str | None, work: Path, media: Media) -> dict[str, Any]:
    tones = AGENT_TONES[:n]
    async with running_worker(work, media, asyncio_debug=False) as worker:
        caller = await start_caller(worker.uri("1001"), play=media.caller_tone, calls=n, max_seconds=seconds + 60)
        async with caller, agents(*tones) as browsers:
            legs = [await worker.handler.next_leg() for _ in range(n)]
            for i in range(n):
                await caller.wait_for("media_active", call=i, timeout=15)
            connect = await asyncio.gather(
                *(
                    worker.open_agent(agent, leg, f"a{leg}", codec=codec)
                    for agent, leg in zip(browsers, legs, strict=True)
                )
            )
            bridged_at = []
            for leg in legs:
                bridged_at.append(time.monotonic())
                await worker.request("bridge", leg=leg, rtc_id=f"a{leg}")
            await asyncio.sleep(1.0)  # past the first frames and the jitter buffers' fill
            before = await worker.stats()
            received_before = [len(agent.heard.times) for agent in browsers]
            started = time.monotonic()
            with cpu_meter(worker) as cpu:
                await asyncio.sleep(seconds)
            elapsed = time.monotonic() - started
            after = await worker.stats()
            received = [len(agent.heard.times) - b for agent, b in zip(browsers, received_before, strict=True)]
            first_tone = [
                agent.heard.first_with(CALLER_HZ, after=t) for agent, t in zip(browsers, bridged_at, strict=True)
            ]
    rtc_before = {leg["rtc_id"]: leg for leg in before["rtc"]}

    def delta(leg: dict[str, Any], *path: str) -> int:
        old: Any = rtc_before[leg["rtc_id"]]
        new: Any = leg
        for key in path:
            old, new = old[key], new[key]
        return int(new) - int(old)

    expected = elapsed * FRAMES_PER_S
    # The worker's clock is the same CLOCK_MONOTONIC: when it sent the caller's first frame to each agent.
    sent_at = {leg["rtc_id"]: leg["first_frame_to_agent_mono"] for leg in after["rtc"]}
    first_sent = [sent_at.get(f"a{leg}") for leg in legs]
    return {
        "calls": n,
        "codec": after["rtc"][0]["codec"],
        "core_share": cpu["core_share"],
        "per_call": cpu["core_share"] / n,
        "connect_s": connect,
        "first_tone_ms": [None if t is None else (t - b) * 1000 for t, b in zip(first_tone, bridged_at, strict=True)],
        "first_sent_ms": [None if t is None else (t - b) * 1000 for t, b in zip(first_sent, bridged_at, strict=True)],
        "lost": [max(0, round(expected - r)) for r in received],
        "expected": round(expected),
        "late": [delta(leg, "late_frames") for leg in after["rtc"]],
        "underruns_to_agent": [delta(leg, "to_agent", "underruns") for leg in after["rtc"]],
        "dropped_to_agent": [delta(leg, "to_agent", "dropped") for leg in after["rtc"]],
        "underruns_to_caller": [delta(leg, "to_caller", "underruns") for leg in after["rtc"]],
        "dropped_to_caller": [delta(leg, "to_caller", "dropped") for leg in after["rtc"]],
    }


def report(r: dict[str, Any]) -> None:
    tones = [f"{t:.0f}" for t in r["first_tone_ms"] if t is not None]
    sent = [f"{t:.0f}" for t in r["first_sent_ms"] if t is not None]
    print(
        f"{r['calls']} call(s), {r['codec']}: worker {r['core_share']:.1%} of a core, {r['per_call']:.1%} per call; "
        f"rtc connect {statistics.median(r['connect_s']) * 1000:.0f} ms (median); "
        f"bridge → the caller's first frame sent {', '.join(sent)} ms, "
        f"its tone at the agent {', '.join(tones) or 'never'} ms"
    )
    print(
        f"    per call over {r['expected']} frames: lost at the agent {r['lost']}, sent late {r['late']}, "
        f"underruns to agent {r['underruns_to_agent']} / to caller {r['underruns_to_caller']}, "
        f"overrun drops to agent {r['dropped_to_agent']} / to caller {r['dropped_to_caller']}"
    )


async def main(counts: list[int], seconds: float, codec: str | None) -> None:
    # The agents gather ICE candidates on loopback only (aioice skips it otherwise): loopback traffic only.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "media").mkdir()
        media = media_in(base / "media")
        for n in counts:
            work = base / f"run-{n}"
            work.mkdir()
            report(await run(n, seconds, codec, work, media))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 2, 4], choices=range(1, 5), metavar="N")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--codec", choices=["PCMU", "opus"], default=None, help="default: the worker's (PCMU)")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.seconds, args.codec))
