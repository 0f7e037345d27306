"""Call setup through one media worker: latency, throughput and CPU per call.

    .venv/bin/python bench/call_setup.py [--calls 400] [--concurrency 4] [--hold 0]

Starts a real `hotline serve` (one worker, SQLite) and has sipp place calls to
demo DID 1001. Prints INVITE-to-200 latency percentiles (which include the
durable commit of the call's record before the answer), calls per second,
and the CPU seconds the control process and the worker spent per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.bridge import BridgeProcess
from peers.rtp import RtpSink
from peers.sipp import sipp_calls

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(calls: int, concurrency: int, hold_s: float, rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bridge = BridgeProcess.configured(work, HOTLINE_LOG_LEVEL="warning")
        async with bridge:
            await bridge.wait_ready()
            _, workers = await bridge.get_json("/api/workers")
            worker_pid = workers["workers"][0]["pid"]
            assert bridge.process is not None
            control_pid = bridge.process.pid
            before = (cpu_seconds(control_pid), cpu_seconds(worker_pid))
            # Every caller's media goes to one sink: the bench measures signalling.
            async with await RtpSink.open() as sink:
                started = time.monotonic()
                result = await sipp_calls(
                    f"127.0.0.1:{bridge.sip_port}",
                    workdir=work / "sipp",
                    rtp_ports=[sink.port] * calls,
                    callee="1001",
                    hold_s=hold_s,
                    concurrency=concurrency,
                    rate=rate,
                    timeout_s=600,
                )
                elapsed = time.monotonic() - started
            after = (cpu_seconds(control_pid), cpu_seconds(worker_pid))
            done = await bridge.wait_for_calls(
                lambda cs: len(cs) >= calls and all(c["outcome"] for c in cs), timeout=60, limit=str(calls)
            )
    setup_ms = [s * 1000 for s in result.setup_times_s]
    print(f"calls placed                 {calls} (offered {rate:g}/s, concurrency {concurrency}, hold {hold_s:g} s)")
    print(f"answered (sipp)              {result.successful_calls}, failed {result.failed_calls}")
    print(f"records closed               {len(done)}")
    print(f"throughput                   {calls / elapsed:.1f} calls/s")
    print(
        f"INVITE->200 ms               p50 {statistics.median(setup_ms):.1f}  p90 {percentile(setup_ms, 0.9):.1f}  "
        f"p99 {percentile(setup_ms, 0.99):.1f}  max {max(setup_ms):.1f}"
    )
    print(f"control CPU per call         {(after[0] - before[0]) / calls * 1000:.2f} ms")
    print(f"worker CPU per call          {(after[1] - before[1]) / calls * 1000:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--hold", type=float, default=0.0)
    # The registry pjsua2 build aborts a worker above about 60 call setups per
    # second (pjlib's ioqueue keys run out): see docs/architecture.md.
    parser.add_argument("--rate", type=float, default=40.0, help="calls per second offered (default 40)")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrency, args.hold, args.rate))
