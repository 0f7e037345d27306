"""What an INVITE flood does to a one-worker bridge, with and without the Kamailio front.

usage: .venv/bin/python bench/sip_flood_one_worker.py never|always [FLOOD_RATE [FLOOD_CALLS [TRUNK_CALLS]]] [--sdp]
Starts `hotline serve` with one worker on the digest test tenant and HOTLINE_SIP_FRONT set as given,
runs a steady stream of trunk calls from 127.0.0.1 (answered, held a second, hung up) and meanwhile a
bounded sipp INVITE flood from 127.0.0.77 (no retransmissions, never answered: the INVITEs pile up).
Prints the flood's count and rate, the trunk calls answered, the worker's restarts and deaths, and
whether the flooder was banned. With --sdp each flood INVITE carries an audio offer, as a real
caller's would. Defaults: 500 INVITEs/s, 5,000 of them (10 s), 50 trunk calls at 2.5/s.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.bridge import BridgeProcess
from harness.tenants import DIGEST_TENANT
from peers.sip_flood import FLOODER, front_port, invite_flood
from peers.sipp import sipp_calls


async def main(mode: str, flood_rate: int, flood_calls: int, trunk_calls: int, *, sdp: bool = False) -> None:
    trunk_rate = 2.5
    with tempfile.TemporaryDirectory(prefix="flood-") as tmp:
        tmp_path = Path(tmp)
        env = {"HOTLINE_SIP_FRONT": mode}
        if mode == "always":
            env["HOTLINE_WORKER_BASE_PORT"] = str(front_port())
        async with BridgeProcess.configured(tmp_path, workers=1, tenant=DIGEST_TENANT, **env) as bridge:
            health = await bridge.wait_ready()
            print(f"HOTLINE_SIP_FRONT={mode}: /healthz sip.fronted={health['sip'].get('fronted')}")
            legit = asyncio.create_task(
                sipp_calls(
                    f"127.0.0.1:{bridge.sip_port}",
                    workdir=tmp_path / "trunk",
                    rtp_ports=[40000 + 2 * i for i in range(trunk_calls)],
                    callee="1001",
                    hold_s=1.0,
                    rate=trunk_rate,
                    concurrency=3,
                    timeout_s=trunk_calls / trunk_rate + 40.0,
                    name="trunk",
                )
            )
            await asyncio.sleep(2.0)
            flood, flood_s = await invite_flood(
                f"127.0.0.1:{bridge.sip_port}",
                tmp_path / "flood",
                calls=flood_calls,
                rate=flood_rate,
                timeout_s=flood_calls / flood_rate + 20.0,
                sdp=sdp,
            )
            result = await legit
            status, health = await bridge.get_json("/healthz")
            records = await bridge.calls(limit="1000")
            log = bridge.log_text()
    sent = flood.stat("OutgoingCall(C)")
    statuses = result.final_statuses()
    workers = health["sip"]["workers"]
    trunk_records = [r for r in records if r["source"].startswith("127.0.0.1:")]
    outcomes = sorted({r["outcome"] for r in trunk_records})
    interrupted = sum(r["outcome"] == "interrupted" for r in trunk_records)
    print(f"flood: {sent} INVITEs in {flood_s:.1f} s ({sent / flood_s:.0f}/s) from {FLOODER}")
    print(
        f"trunk: {statuses.count(200)}/{trunk_calls} answered ({len(statuses)} ended); finals {sorted(set(statuses))}"
    )
    print(
        f"trunk: {result.successful_calls} completed per sipp; {len(trunk_records)} records, outcomes {outcomes},"
        f" {interrupted} interrupted"
    )
    print(f"worker: restarts {[w['restarts'] for w in workers]}, deaths logged {log.count('worker_died')}")
    print(f"flooder banned: {f'pike blocking INVITE from {FLOODER}' in log}")
    decided = len(re.findall(rf"call_(?:challenged|rejected).*source={re.escape(FLOODER)}:", log))
    print(f"flood INVITEs that reached the control process: {decided}; /healthz {status} {health['status']}")
    for line in log.splitlines():
        if "worker_died" in line or "Assertion" in line or "abort" in line.lower():
            print("  ", line[:300])


if __name__ == "__main__":
    argv = [a for a in sys.argv[1:] if a != "--sdp"]
    if not argv or argv[0] not in ("never", "always"):
        raise SystemExit(__doc__)
    numbers = [int(a) for a in argv[1:]]
    defaults = [500, 5000, 50]
    asyncio.run(main(argv[0], *(numbers + defaults[len(numbers) :]), sdp="--sdp" in sys.argv))
