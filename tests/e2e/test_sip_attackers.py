"""Real attackers at the SIP edge: sipvicious and a sipp INVITE flood, while a trunk keeps calling.

The bridge runs behind its Kamailio front (pike flood guard, sanity checks,
405 for anything but INVITE): with two workers, and with one worker and
HOTLINE_SIP_FRONT=always (alone, pjsua aborts under such a flood). Attackers send from their own
loopback addresses (127.0.0.66 and up), the trunk from 127.0.0.1; nothing
leaves the machine. Every run is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import re
import socket
import sys
import uuid
from pathlib import Path

import pytest

from harness.bridge import BridgeProcess
from harness.tenants import DIGEST_TENANT
from peers.sip_flood import FLOODER, front_port, invite_flood
from peers.sipp import SippResult, sipp_calls

pytestmark = [pytest.mark.peers]

PEERS = Path(__file__).resolve().parents[1] / "peers"
PROBE = "127.0.0.72"
# The tenant's lines (1001, 1002, 1004) and the digest line 2002 among 200 made-up ones.
EXTENSIONS = "1000-1100,2000-2100"
# Seconds each sipvicious tool may run.
TOOL_LIMIT_S = 60.0


async def sipvicious(tool: str, source: str, *args: str, limit_s: float = TOOL_LIMIT_S) -> str:
    """Run one sipvicious tool from `source` to its end (or the limit) and return what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PEERS / "sipvicious_from.py"),
        source,
        tool,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), limit_s)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
    return out.decode(errors="replace")


def requests_answered_before_ban(port: int, source: str, limit: int = 60) -> int:
    """REGISTERs one after the other from `source` until one goes unanswered: how many were answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(0.5)
        local = sock.getsockname()[1]
        for n in range(limit):
            branch = f"z9hG4bK{uuid.uuid4().hex}"
            message = (
                f"REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {source}:{local};branch={branch};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{source}>;tag={n}\r\n"
                f"To: <sip:probe@{source}>\r\n"
                f"Call-ID: probe-{uuid.uuid4().hex}\r\n"
                f"CSeq: {n + 1} REGISTER\r\n"
                f"Contact: <sip:probe@{source}:{local}>\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.sendto(message.encode(), ("127.0.0.1", port))
            try:
                sock.recvfrom(65535)
            except TimeoutError:
                return n
        return limit


def extensions_found(output: str) -> list[str]:
    """svwar's table rows: '| extension | authentication |'."""
    return [m.group(1) for m in re.finditer(r"^\|\s*(\S+)\s*\|\s*(reqauth|noauth|weird)", output, re.MULTILINE)]


def passwords_found(output: str) -> list[str]:
    """svcrack's table rows: '| extension | password |'."""
    rows = re.findall(r"^\|\s*(\S+)\s*\|\s*(\S+)\s*\|", output, re.MULTILINE)
    return [password for extension, password in rows if extension.lower() != "extension"]


async def trunk_calls(
    bridge: BridgeProcess,
    tmp_path: Path,
    calls: int,
    rate: float,
    name: str,
    concurrency: int = 6,
    hold_s: float = 1.0,
) -> SippResult:
    """Legitimate calls from the trunk's address: answered, held (a second by default), hung up."""
    return await sipp_calls(
        f"127.0.0.1:{bridge.sip_port}",
        workdir=tmp_path / name,
        rtp_ports=[40000 + 2 * i for i in range(calls)],
        callee="1001",
        hold_s=hold_s,
        rate=rate,
        concurrency=concurrency,
        timeout_s=calls / rate + 40.0,
        name=name,
    )


async def test_sipvicious_enumerates_nothing_cracks_nothing_and_is_banned_while_the_trunk_is_served(
    tmp_path: Path,
) -> None:
    words = tmp_path / "words.txt"
    # The real password is the 40th guess: the ban must come first.
    words.write_text("\n".join([*(f"guess{i}" for i in range(39)), "pbx-secret", "letmein"]) + "\n")
    async with BridgeProcess.configured(tmp_path, workers=2, tenant=DIGEST_TENANT) as bridge:
        await bridge.wait_ready()
        port = str(bridge.sip_port)
        legit = asyncio.create_task(trunk_calls(bridge, tmp_path, 40, 2.0, "trunk-during-attack"))
        # Each tool from its own address: one ban must not hide the next tool's findings.
        outputs = {
            "svmap": await sipvicious("svmap", "127.0.0.66", "127.0.0.1", "-p", port),
            "svwar REGISTER": await sipvicious("svwar", "127.0.0.67", "-e", EXTENSIONS, "-p", port, "127.0.0.1"),
            "svwar INVITE": await sipvicious(
                "svwar", "127.0.0.68", "-m", "INVITE", "-e", EXTENSIONS, "-p", port, "127.0.0.1"
            ),
            "svwar INVITE --force": await sipvicious(
                "svwar", "127.0.0.69", "-m", "INVITE", "--force", "-e", EXTENSIONS, "-p", port, "127.0.0.1"
            ),
            "svcrack REGISTER": await sipvicious(
                "svcrack", "127.0.0.70", "-u", "pbx", "-d", str(words), "-p", port, "127.0.0.1"
            ),
            "svcrack INVITE": await sipvicious(
                "svcrack",
                "127.0.0.71",
                "-m",
                "INVITE",
                "-u",
                "pbx",
                "--requesturi",
                "2002",
                "-d",
                str(words),
                "-p",
                port,
                "127.0.0.1",
            ),
        }
        answered_before_ban = await asyncio.to_thread(requests_answered_before_ban, bridge.sip_port, PROBE)
        result = await legit
        health_status, health = await bridge.get_json("/healthz")
        front_log = bridge.log_text()

    for name, output in outputs.items():
        print(f"\n---- {name}\n{output[:2500]}\n...\n{output[-1500:]}")
    statuses = result.final_statuses()
    print(
        f"\ntrunk calls during the attack: {statuses.count(200)}/{len(statuses)} answered;"
        f" probe answered {answered_before_ban} requests before the ban"
    )
    assert extensions_found(outputs["svwar REGISTER"]) == []
    assert extensions_found(outputs["svwar INVITE"]) == []
    assert extensions_found(outputs["svwar INVITE --force"]) == []
    assert passwords_found(outputs["svcrack REGISTER"]) == []
    assert passwords_found(outputs["svcrack INVITE"]) == []
    assert answered_before_ban <= 20
    assert "pike blocking" in front_log
    assert statuses.count(200) == len(statuses) == 40, result.describe()
    assert health_status == 200, health


async def test_an_invite_flood_from_one_source_is_banned_and_the_trunk_is_still_answered(tmp_path: Path) -> None:
    flood_calls, flood_rate = 10_000, 500  # 20 s
    async with BridgeProcess.configured(tmp_path, workers=2, tenant=DIGEST_TENANT) as bridge:
        await bridge.wait_ready()
        legit = asyncio.create_task(trunk_calls(bridge, tmp_path, 100, 5.0, "trunk-during-flood"))
        flood, flood_s = await invite_flood(
            f"127.0.0.1:{bridge.sip_port}", tmp_path / "flood", calls=flood_calls, rate=flood_rate, timeout_s=40.0
        )
        result = await legit
        records = await bridge.calls(limit="1000")
        health_status, health = await bridge.get_json("/healthz")
        log = bridge.log_text()

    sent = flood.stat("OutgoingCall(C)")
    statuses = result.final_statuses()
    answered = statuses.count(200)
    from_flooder = [r for r in records if r["source"].startswith(f"{FLOODER}:")]
    # What got past the front to the control process: challenged (no record) or refused (a record).
    decided = len(re.findall(rf"call_(?:challenged|rejected).*source={re.escape(FLOODER)}:", log))
    print(
        f"\nflood: {sent} INVITEs in {flood_s:.1f} s ({sent / flood_s:.0f}/s) from {FLOODER};"
        f" {decided} reached the control process, {len(from_flooder)} its records.\n"
        f"trunk: {answered}/{len(statuses)} answered during the flood"
    )
    assert sent == flood_calls, flood.describe()
    assert answered >= 0.99 * 100, result.describe()
    assert len(statuses) == 100
    # pike lets a window's worth through before the ban; none of the rest touch a worker or the database.
    assert decided <= 20
    assert len(from_flooder) <= decided
    assert f"pike blocking INVITE from {FLOODER}" in log
    assert health_status == 200, health


async def test_a_lone_worker_behind_the_front_outlives_an_invite_flood_and_the_trunk_is_still_answered(
    tmp_path: Path,
) -> None:
    # Alone (HOTLINE_SIP_FRONT=never) this worker aborts within a second of such a flood.
    flood_calls, flood_rate = 5_000, 500  # 10 s
    # At most 3 calls at once (one worker holds 4). The flood INVITEs pike lets through before the ban
    # (a window's worth, in a few ms) may fill the worker for an instant: one trunk call in 100 may get 503.
    trunk, trunk_rate = 100, 4.0
    async with BridgeProcess.configured(
        tmp_path,
        workers=1,
        tenant=DIGEST_TENANT,
        HOTLINE_SIP_FRONT="always",
        HOTLINE_WORKER_BASE_PORT=str(front_port()),
    ) as bridge:
        ready = await bridge.wait_ready()
        assert ready["sip"]["fronted"] is True, ready
        legit = asyncio.create_task(
            trunk_calls(bridge, tmp_path, trunk, trunk_rate, "trunk-lone", concurrency=3, hold_s=0.5)
        )
        await asyncio.sleep(2.0)
        flood, flood_s = await invite_flood(
            f"127.0.0.1:{bridge.sip_port}", tmp_path / "flood", calls=flood_calls, rate=flood_rate, timeout_s=25.0
        )
        result = await legit
        health_status, health = await bridge.get_json("/healthz")
        log = bridge.log_text()

    sent = flood.stat("OutgoingCall(C)")
    statuses = result.final_statuses()
    answered = statuses.count(200)
    workers = health["sip"]["workers"]
    decided = len(re.findall(rf"call_(?:challenged|rejected).*source={re.escape(FLOODER)}:", log))
    print(
        f"\nflood: {sent} INVITEs in {flood_s:.1f} s ({sent / flood_s:.0f}/s) from {FLOODER} at one worker"
        f" behind the front; {decided} reached the control process.\n"
        f"trunk: {answered}/{len(statuses)} answered during the flood; worker restarts {workers[0]['restarts']}"
    )
    assert sent == flood_calls, flood.describe()
    assert answered >= 0.99 * trunk, result.describe()
    assert len(statuses) == trunk
    assert decided <= 20
    assert f"pike blocking INVITE from {FLOODER}" in log
    assert "worker_died" not in log
    assert [(w["restarts"], w["generation"], w["state"]) for w in workers] == [(0, 1, "ready")], workers
    assert health_status == 200, health
