"""Several media workers behind Kamailio: spread by load, refuse when full, survive a worker's death.

Real peers only: `hotline serve` with three pjsua2 workers behind a real
Kamailio, sipp callers whose media lands in one `RtpSink` per call. Each
worker takes at most 4 calls (HOTLINE_WORKER_CAPACITY's default) and
Kamailio's dispatcher (algorithm 10, maxload 4) places every call on the
least loaded worker, so 12 calls fill the three workers exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from audio import rms_dbfs
from harness.bridge import BridgeProcess
from hotline.control import RETRY_AFTER_S
from peers.require import require_program
from peers.rtp import RtpSink
from peers.sipp import SippResult, sipp_calls
from telephony.kamailio_front import FrontWorker, KamailioFront

pytestmark = [pytest.mark.peers]

WORKERS = 3
CAPACITY = 4  # calls per worker: the bridge's default HOTLINE_WORKER_CAPACITY
FULL = WORKERS * CAPACITY
RATE = 100  # calls per second: all twelve are up together
AUDIBLE_DBFS = -45
PACKETS_PER_S = 50  # 20 ms frames
REPLACEMENT_LIMIT_S = 5.0
SURVIVOR_WINDOW_S = 4.0  # how long after the kill (from +1 s) the survivors must keep their audio
MAX_GAP_S = 0.5


@pytest.fixture(autouse=True)
def _kamailio_installed() -> None:
    require_program("kamailio")


@contextlib.asynccontextmanager
async def rtp_sinks(n: int) -> AsyncIterator[list[RtpSink]]:
    sinks = [await RtpSink.open() for _ in range(n)]
    try:
        yield sinks
    finally:
        for sink in sinks:
            sink.close()


def pool_bridge(tmp_path: Path, database_url: str | None = None) -> BridgeProcess:
    """A bridge with three workers behind Kamailio."""
    return BridgeProcess.configured(tmp_path, workers=WORKERS, database_url=database_url)


def front_client(bridge: BridgeProcess) -> KamailioFront:
    """A jsonrpcs client of the bridge's Kamailio (it starts nothing): to read dispatcher state."""
    base = int(bridge.extra_env["HOTLINE_WORKER_BASE_PORT"])
    return KamailioFront(
        binary="kamailio",
        listen_host="127.0.0.1",
        listen_port=bridge.sip_port,
        workers=[FrontWorker(i, "127.0.0.1", base + i) for i in range(WORKERS)],
        capacity=CAPACITY,
        run_dir=bridge.var_dir / "run" / "kamailio",
    )


async def workers_status(bridge: BridgeProcess) -> list[dict[str, Any]]:
    status, body = await bridge.get_json("/api/workers")
    assert status == 200, body
    return list(body["workers"])


async def wait_all_up(bridge: BridgeProcess, sinks: Iterable[RtpSink], n_open: int, timeout: float = 15.0) -> None:
    """Until n_open calls are open in the records and every one of `sinks` hears the bridge."""
    await bridge.wait_for_calls(lambda cs: sum(c["outcome"] is None for c in cs) == n_open, timeout=timeout)
    for sink in sinks:
        await sink.wait_for_packets(25, timeout=timeout)


async def wait_dispatcher(front: KamailioFront, loads: dict[int, int], timeout: float = 5.0) -> None:
    """Until Kamailio's dispatcher has every worker active (routable) with these call loads."""
    want = {index: ("active", load) for index, load in loads.items()}
    deadline = time.monotonic() + timeout
    while True:
        state = await front.dispatcher_state()
        seen = {d["index"]: (d["state"], d["load"]) for d in state}
        if seen == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"dispatcher has {seen}, expected {want}: {state}")
        await asyncio.sleep(0.1)


def sipp_port(result: SippResult) -> int:
    return int(result.command[result.command.index("-p") + 1])


def retry_after(result: SippResult) -> str | None:
    for message in result.messages:
        if message.direction == "received" and message.status == 503:
            match = re.search(r"^Retry-After:\s*(\d+)", message.text, re.MULTILINE | re.IGNORECASE)
            return match.group(1) if match else None
    return None


def bye_statuses(result: SippResult) -> dict[str, int]:
    """Per Call-ID: the final response sipp got to its BYE."""
    out: dict[str, int] = {}
    for m in result.messages:
        if m.direction == "received" and m.status is not None and m.status >= 200 and m.cseq.endswith("BYE"):
            out.setdefault(m.call_id, m.status)
    return out


def sink_by_call_id(result: SippResult, sinks: list[RtpSink]) -> dict[str, RtpSink]:
    """Which sink each Call-ID's SDP offered (the port in its INVITE's m= line)."""
    by_port = {s.port: s for s in sinks}
    out: dict[str, RtpSink] = {}
    for m in result.messages:
        if m.direction == "sent" and m.method == "INVITE":
            match = re.search(r"^m=audio (\d+) ", m.text, re.MULTILINE)
            assert match, m.text
            out[m.call_id] = by_port[int(match.group(1))]
    return out


async def level_dbfs(sink: RtpSink, since: float | None = None, until: float | None = None) -> float:
    """RMS of what the sink heard in [since, until); decoded off the event loop (it takes a while)."""
    return await asyncio.to_thread(lambda: rms_dbfs(sink.samples(since=since, until=until)))


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def identities(pids: Iterable[int]) -> set[tuple[int, str]]:
    """(pid, start time) of each live process: a pid the kernel reuses later is not mistaken for it."""
    out = set()
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            out.add((pid, fields[19]))
    return out


def kamailio_identities(bridge: BridgeProcess) -> set[tuple[int, str]]:
    """Kamailio's main process and its children (they share its process group)."""
    main = int((bridge.var_dir / "run" / "kamailio" / "kamailio.pid").read_text().strip())
    group = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    found = identities(pid for pid in group if (fields := _stat(pid)) is not None and fields[2] == str(main))
    assert len(found) > 1, "kamailio runs as a main process and its children"
    return found


def assert_none_outlived(processes: set[tuple[int, str]]) -> None:
    """None of these processes is still there (a zombie has exited: only its parent's wait is missing)."""
    alive = [
        (pid, fields[0])
        for pid, started in processes
        if (fields := _stat(pid)) is not None and fields[19] == started and fields[0] != "Z"
    ]
    assert not alive, f"processes outlived the bridge: {alive}"


async def test_twelve_calls_fill_three_workers_and_the_thirteenth_gets_503(tmp_path: Path, database_url: str) -> None:
    async with pool_bridge(tmp_path, database_url) as bridge, rtp_sinks(FULL) as sinks, rtp_sinks(1) as spare:
        await bridge.wait_ready()
        processes = identities(w["pid"] for w in await workers_status(bridge)) | kamailio_identities(bridge)
        front = front_client(bridge)

        calls = asyncio.create_task(
            sipp_calls(
                f"127.0.0.1:{bridge.sip_port}",
                workdir=tmp_path / "twelve",
                rtp_ports=[s.port for s in sinks],
                callee="1001",
                hold_s=8.0,
                concurrency=FULL,
                rate=RATE,
                name="twelve",
            )
        )
        await wait_all_up(bridge, sinks, FULL)
        await wait_dispatcher(front, dict.fromkeys(range(WORKERS), CAPACITY), timeout=0)

        # Every worker is at capacity: the front itself refuses, with a time to come back.
        overflow = await sipp_calls(
            f"127.0.0.1:{bridge.sip_port}",
            workdir=tmp_path / "overflow",
            rtp_ports=[spare[0].port],
            callee="1001",
            expect_status=503,
            timeout_s=10,
            name="overflow",
        )
        assert overflow.ok, overflow.describe()
        assert overflow.final_statuses() == [503]
        assert retry_after(overflow) == str(RETRY_AFTER_S)
        assert not calls.done(), "the 13th call was placed while the twelve were up"

        result = await calls
        assert result.ok, result.describe()
        assert result.final_statuses() == [200] * FULL
        print(f"\nsetup times (INVITE -> 200) ms: {sorted(round(s * 1000) for s in result.setup_times_s)}")

        # Each caller heard the bridge (greeting, then music) for its whole call.
        sink_of = sink_by_call_id(result, sinks)
        for call_id, sink in sink_of.items():
            assert sink.payload_type == 0, call_id
            assert sink.duration_s() > 7.0, (call_id, sink.duration_s())
            assert await level_dbfs(sink) > AUDIBLE_DBFS, call_id

        everything = await bridge.wait_for_calls(lambda cs: len(cs) == FULL + 1 and all(c["outcome"] for c in cs))
        # The front's own refusal is a call the client lost: it has its record too.
        (refused,) = [r for r in everything if r["outcome"] == "rejected"]
        assert (refused["sip_status"], refused["worker"], refused["client_id"]) == (503, None, "acme")
        assert refused["sip_call_id"] == overflow.messages[0].call_id
        records = [r for r in everything if r is not refused]
        assert Counter(r["worker"] for r in records) == dict.fromkeys(range(WORKERS), CAPACITY)
        lengths = result.call_lengths_by_call_id
        assert sorted(lengths) == sorted(r["sip_call_id"] for r in records)
        for record in records:
            assert record["outcome"] == "abandoned", record
            assert record["ended_by"] == "caller"
            assert record["did"] == "1001"
            assert record["source"] == f"127.0.0.1:{sipp_port(result)}", "the front stamps the caller's address"
            assert record["queue_wait_s"] == pytest.approx(lengths[record["sip_call_id"]], abs=0.3)

        # The calls' load went back with their BYEs.
        await wait_dispatcher(front, dict.fromkeys(range(WORKERS), 0))
    bridge.assert_loop_never_blocked()
    assert_none_outlived(processes)


async def test_kill9_of_a_worker_mid_call(tmp_path: Path) -> None:
    victim = 1
    async with pool_bridge(tmp_path) as bridge, rtp_sinks(FULL) as sinks, rtp_sinks(CAPACITY) as later_sinks:
        await bridge.wait_ready()
        before = {w["index"]: w["pid"] for w in await workers_status(bridge)}
        processes = identities(before.values())
        front = front_client(bridge)

        calls = asyncio.create_task(
            sipp_calls(
                f"127.0.0.1:{bridge.sip_port}",
                workdir=tmp_path / "twelve",
                rtp_ports=[s.port for s in sinks],
                callee="1001",
                hold_s=15.0,
                concurrency=FULL,
                rate=RATE,
                name="twelve",
            )
        )
        await wait_all_up(bridge, sinks, FULL)
        open_calls = await bridge.calls()
        assert Counter(r["worker"] for r in open_calls) == dict.fromkeys(range(WORKERS), CAPACITY)
        victim_calls = {r["sip_call_id"] for r in open_calls if r["worker"] == victim}

        killed_at = time.monotonic()
        os.kill(before[victim], signal.SIGKILL)

        # The pool replaces it on the same port, with a new process ...
        while True:
            now = time.monotonic()
            status = {w["index"]: w for w in await workers_status(bridge)}[victim]
            if status["state"] == "ready" and status["pid"] not in (None, before[victim]):
                replaced_s = now - killed_at
                break
            assert now - killed_at < REPLACEMENT_LIMIT_S + 5, status
            await asyncio.sleep(0.05)
        # ... and Kamailio routes to it again, at zero load, the others' load untouched.
        await wait_dispatcher(front, {i: 0 if i == victim else CAPACITY for i in range(WORKERS)})
        routed_s = time.monotonic() - killed_at
        print(
            f"\nworker {victim} killed: ready again with a new pid after {replaced_s:.2f} s, "
            f"routed to at zero load after {routed_s:.2f} s"
        )
        assert replaced_s < REPLACEMENT_LIMIT_S
        assert routed_s < REPLACEMENT_LIMIT_S

        # Its calls are closed as interrupted; the others are still up.
        records = await bridge.wait_for_calls(
            lambda cs: sum(c["outcome"] == "interrupted" for c in cs) == CAPACITY, timeout=5
        )
        interrupted = [r for r in records if r["outcome"] == "interrupted"]
        assert {r["sip_call_id"] for r in interrupted} == victim_calls
        assert all(r["outcome"] is None for r in records if r["sip_call_id"] not in victim_calls)
        for record in interrupted:
            assert record["ended_by"] == "system"
            assert (await bridge.call(record["id"]))["events"][-1]["kind"] == "interrupted"

        # Full strength: four new calls, placed while the eight survivors are up, all land on
        # the replaced worker (the two others are full), and every worker holds 4 calls again.
        later = asyncio.create_task(
            sipp_calls(
                f"127.0.0.1:{bridge.sip_port}",
                workdir=tmp_path / "later",
                rtp_ports=[s.port for s in later_sinks],
                callee="1001",
                hold_s=3.0,
                concurrency=CAPACITY,
                rate=RATE,
                name="later",
            )
        )
        await wait_all_up(bridge, later_sinks, FULL)
        assert not calls.done(), "the survivors were still up when the new calls were placed"
        records = await bridge.calls()
        new_calls = [r for r in records if r["sip_call_id"] not in {c["sip_call_id"] for c in open_calls}]
        assert [r["worker"] for r in new_calls] == [victim] * CAPACITY
        legs = {w["index"]: w["media"]["legs"] for w in await workers_status(bridge)}
        assert legs == dict.fromkeys(range(WORKERS), CAPACITY)
        later_result = await later
        assert later_result.ok, later_result.describe()
        assert later_result.final_statuses() == [200] * CAPACITY
        for sink in later_sinks:
            assert await level_dbfs(sink) > AUDIBLE_DBFS

        # The survivors kept their audio, without a gap, well after the kill; the victims' stopped.
        window = (killed_at + 1.0, killed_at + 1.0 + SURVIVOR_WINDOW_S)
        await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
        assert not calls.done(), "the survivors were up for the whole window"
        result = await calls
        sink_of = sink_by_call_id(result, sinks)
        assert set(sink_of) >= victim_calls
        for call_id, sink in sink_of.items():
            if call_id in victim_calls:
                assert not [p for p in sink.packets if p.arrival > killed_at + 0.5], call_id
                continue
            arrivals = [p.arrival for p in sink.packets if window[0] <= p.arrival < window[1]]
            assert len(arrivals) >= 0.9 * PACKETS_PER_S * SURVIVOR_WINDOW_S, (call_id, len(arrivals))
            gaps = [b - a for a, b in itertools.pairwise([window[0], *arrivals, window[1]])]
            assert max(gaps) < MAX_GAP_S, (call_id, max(gaps))
            assert await level_dbfs(sink, *window) > AUDIBLE_DBFS, call_id

        # Nobody hung up the victims' calls (no BYE reached any caller); their callers' own BYE
        # goes through Kamailio to the new worker, which knows no such dialog: 481. Exactly
        # those four calls fail; the eight others end with 200.
        assert not [m for m in result.messages if m.direction == "received" and m.method == "BYE"]
        assert result.final_statuses() == [200] * FULL
        assert bye_statuses(result) == {cid: 481 if cid in victim_calls else 200 for cid in sink_of}
        assert (result.successful_calls, result.failed_calls) == (FULL - CAPACITY, CAPACITY), result.describe()

        records = await bridge.wait_for_calls(
            lambda cs: len(cs) == FULL + CAPACITY and all(c["outcome"] for c in cs), timeout=10
        )
        later_ids = {r["sip_call_id"] for r in new_calls}

        def role(record: dict[str, Any]) -> str:
            sip_call_id = record["sip_call_id"]
            return "victim" if sip_call_id in victim_calls else "new" if sip_call_id in later_ids else "survivor"

        assert Counter((role(r), r["outcome"], r["worker"] == victim) for r in records) == {
            ("victim", "interrupted", True): CAPACITY,
            ("survivor", "abandoned", False): FULL - CAPACITY,
            ("new", "abandoned", True): CAPACITY,
        }
        # The stale dialogs' BYEs did not touch any live worker's load.
        await wait_dispatcher(front, dict.fromkeys(range(WORKERS), 0))
        processes |= identities(w["pid"] for w in await workers_status(bridge)) | kamailio_identities(bridge)
    bridge.assert_loop_never_blocked()
    assert_none_outlived(processes)
