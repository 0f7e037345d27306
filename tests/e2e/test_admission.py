"""Refusals over real SIP: each with its status, and each leaving a rejected record."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from harness.bridge import BridgeProcess
from harness.tenants import DIGEST_TENANT, E2E_TENANT
from peers.peer_process import run_caller, start_caller
from peers.sipp import SippResult, sipp_calls

pytestmark = [pytest.mark.peers]


def tenant_opening_in_three_days(tmp_path: Path) -> tuple[Path, datetime]:
    """The e2e tenant with line 1004 opening three days from now at 09:00, Paris time."""
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    text = E2E_TENANT.read_text().replace("2099-01-01", day.isoformat())
    path = tmp_path / "tenant.toml"
    path.write_text(text)
    opening = datetime(day.year, day.month, day.day, 9, tzinfo=ZoneInfo("Europe/Paris")).astimezone(UTC)
    return path, opening


def header(result: SippResult, name: str) -> str | None:
    for message in result.messages:
        if message.direction == "received" and message.status and message.status >= 300:
            match = re.search(rf"^{name}:\s*(.+)$", message.text, re.MULTILINE | re.IGNORECASE)
            if match:
                return match.group(1).strip()
    return None


async def refused(
    bridge: BridgeProcess, tmp_path: Path, did: str, status: int, *, local_ip: str = "127.0.0.1", name: str
) -> SippResult:
    result = await sipp_calls(
        f"127.0.0.1:{bridge.sip_port}",
        workdir=tmp_path / name,
        rtp_ports=[40000],
        callee=did,
        expect_status=status,
        local_ip=local_ip,
        name=name,
        timeout_s=15,
    )
    assert result.ok, result.describe()
    assert result.final_statuses() == [status]
    return result


async def test_refusals_have_their_status_and_a_rejected_record(tmp_path: Path, database_url: str) -> None:
    tenant, opening = tenant_opening_in_three_days(tmp_path)
    async with BridgeProcess.configured(tmp_path, database_url=database_url, tenant=tenant) as bridge:
        await bridge.wait_ready()

        await refused(bridge, tmp_path, "9999", 404, name="unknown")
        await refused(bridge, tmp_path, "1001", 403, local_ip="127.0.0.2", name="stranger")
        await refused(bridge, tmp_path, "1002", 403, name="other-trunk")
        before = datetime.now(UTC)
        closed = await refused(bridge, tmp_path, "1004", 480, name="closed")
        retry_after = header(closed, "Retry-After")
        assert retry_after is not None, "a 480 says when to come back when it is known"
        expected = (opening - before).total_seconds()
        assert int(retry_after) == pytest.approx(expected, abs=5)

        calls = await bridge.wait_for_calls(lambda cs: len(cs) == 4 and all(c["outcome"] for c in cs))
        by_did = {(c["did"], c["source"].split(":")[0]): c for c in calls}
        assert {key: (c["outcome"], c["sip_status"]) for key, c in by_did.items()} == {
            ("9999", "127.0.0.1"): ("rejected", 404),
            ("1001", "127.0.0.2"): ("rejected", 403),
            ("1002", "127.0.0.1"): ("rejected", 403),
            ("1004", "127.0.0.1"): ("rejected", 480),
        }
        # A trusted call outside the window is the client's to see; the other refusals belong to no client.
        assert {key: c["client_id"] for key, c in by_did.items()} == {
            ("9999", "127.0.0.1"): None,
            ("1001", "127.0.0.2"): None,
            ("1002", "127.0.0.1"): None,
            ("1004", "127.0.0.1"): "acme",
        }
        for record in calls:
            detail = await bridge.call(record["id"])
            assert [e["kind"] for e in detail["events"]] == ["arrived", "rejected"]
        bridge.assert_loop_never_blocked()


async def test_digest_line_challenges_then_admits_the_right_password(tmp_path: Path) -> None:
    async with BridgeProcess.configured(tmp_path, tenant=DIGEST_TENANT) as bridge:
        await bridge.wait_ready()
        wrong = await run_caller(
            bridge.uri("2002"), digest="pbx:guess", expect_status=403, max_seconds=15, local_ip="127.0.0.2"
        )
        assert wrong.ok, wrong.describe()
        right = await run_caller(bridge.uri("2002"), digest="pbx:pbx-secret", hangup_after=1.0, max_seconds=15)
        assert right.ok, right.describe()
        calls = await bridge.wait_for_calls(lambda cs: len(cs) == 2 and all(c["outcome"] for c in cs))
        outcomes = sorted((c["outcome"], c["sip_status"], c["client_id"]) for c in calls)
        assert outcomes == [("abandoned", 200, "globex"), ("rejected", 403, None)]


async def test_a_line_at_its_cap_answers_503_with_retry_after_and_the_call_after_gets_in(tmp_path: Path) -> None:
    tenant = tmp_path / "capped.toml"
    tenant.write_text(
        E2E_TENANT.read_text().replace(
            'dids = ["1001"]\ntrunk_sources = ["127.0.0.1/32"]\n',
            'dids = ["1001"]\ntrunk_sources = ["127.0.0.1/32"]\nmax_concurrent_calls = 1\n',
        )
    )
    async with BridgeProcess.configured(tmp_path, tenant=tenant) as bridge:
        await bridge.wait_ready()
        async with await start_caller(bridge.uri("1001"), max_seconds=30) as first:
            await first.wait_for("media_active", timeout=15)
            over = await refused(bridge, tmp_path, "1001", 503, name="over-cap")
            assert header(over, "Retry-After") == "5"
        later = await run_caller(bridge.uri("1001"), hangup_after=0.5, max_seconds=15)
        assert later.ok, later.describe()
        calls = await bridge.wait_for_calls(lambda cs: len(cs) == 3 and all(c["outcome"] for c in cs))
    statuses = sorted((c["outcome"], c["sip_status"]) for c in calls)
    assert statuses == [("abandoned", 200), ("abandoned", 200), ("rejected", 503)]
    (capped,) = [c for c in calls if c["sip_status"] == 503]
    assert capped["client_id"] == "acme", "the client sees the calls its cap turned away"
