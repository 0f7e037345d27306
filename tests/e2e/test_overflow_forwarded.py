"""Calls forwarded by a client's PBX, over real SIP: in window, out of window, and from elsewhere."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from harness.bridge import BridgeProcess
from harness.tenants import E2E_TENANT
from peers.peer_process import start_answerer, start_caller
from peers.sipp import sipp_calls

pytestmark = [pytest.mark.peers]

HASH = "$argon2id$v=19$m=65536,t=3,p=4$evHPEdnDksQN//VzfmSbzw$02ZtIsxcCKJSfkV9gp9xgvL+8mxQnRbJteVAiNE2Fw0"
# Globex's PBX is 127.0.0.3; it forwards its own number +442000000000 to the bridge's 5000.
EXTRA = f"""
[[lines]]
id = "globex-overflow"
client = "globex"
dids = ["5000"]
trunk_sources = ["127.0.0.3/32"]

[lines.overflow]
takeover = "forwarded"
numbers = ["+442000000000"]

[[client_admins]]
login = "globex-admin"
name = "Globex admin"
password_hash = "{HASH}"
client = "globex"
"""
DIVERSION = "Diversion: <sip:+442000000000@pbx.globex.example>;reason=no-answer;counter=1"


async def forwarded(bridge: BridgeProcess, tmp_path: Path, name: str, status: int, local_ip: str) -> list[int]:
    result = await sipp_calls(
        f"127.0.0.1:{bridge.sip_port}",
        workdir=tmp_path / name,
        rtp_ports=[40000],
        callee="5000",
        expect_status=status,
        hold_s=1.0,
        headers=[DIVERSION],
        local_ip=local_ip,
        name=name,
        timeout_s=20,
    )
    assert result.ok, result.describe()
    return result.final_statuses()


async def test_a_forwarded_call_is_taken_only_in_window_and_only_from_the_client_s_pbx(tmp_path: Path) -> None:
    tenant = tmp_path / "tenant.toml"
    tenant.write_text(E2E_TENANT.read_text() + EXTRA)
    async with BridgeProcess.configured(tmp_path, tenant=tenant) as bridge:
        await bridge.wait_ready()
        # No window yet: 480, so the PBX falls back to its own voicemail.
        assert await forwarded(bridge, tmp_path, "before", 480, "127.0.0.3") == [480]
        auth = {"Authorization": "Basic " + base64.b64encode(b"globex-admin:alice-demo").decode()}
        until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        async with (
            aiohttp.ClientSession(headers=auth) as http,
            http.post(bridge.http("/api/overflow/lines/globex-overflow/takeover"), json={"until": until}) as resp,
        ):
            assert resp.status == 200, await resp.text()
        assert await forwarded(bridge, tmp_path, "during", 200, "127.0.0.3") == [200]
        # The same call from another address (127.0.0.1 is a trunk, but acme's): 403.
        assert await forwarded(bridge, tmp_path, "elsewhere", 403, "127.0.0.1") == [403]
        calls = await bridge.wait_for_calls(lambda cs: len(cs) == 3 and all(c["outcome"] for c in cs))
    by_status = {c["sip_status"]: c for c in calls if c["outcome"] == "rejected"}
    answered = [c for c in calls if c["outcome"] != "rejected"]
    assert (by_status[480]["line_id"], by_status[480]["client_id"]) == ("globex-overflow", "globex")
    assert by_status[403]["client_id"] is None, "an untrusted source learns nothing, and is recorded as nobody's"
    assert [(c["line_id"], c["client_id"]) for c in answered] == [("globex-overflow", "globex")]


async def test_callers_waiting_when_the_window_ends_go_back_to_the_client_s_number(tmp_path: Path) -> None:
    async with await start_answerer(hangup_after=2.0, max_seconds=60) as phone:
        # Acme's own phone answers the caller we hand back; the line returns waiting callers there.
        tenant = tmp_path / "tenant.toml"
        returning = EXTRA.replace(
            'numbers = ["+442000000000"]',
            f'numbers = ["+442000000000"]\nend_policy = "return"\nreturn_to = "{phone.uri_for("0442000000000")}"',
        )
        tenant.write_text(E2E_TENANT.read_text() + returning)
        async with BridgeProcess.configured(tmp_path, tenant=tenant) as bridge:
            await bridge.wait_ready()
            auth = {"Authorization": "Basic " + base64.b64encode(b"globex-admin:alice-demo").decode()}
            until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            async with aiohttp.ClientSession(headers=auth) as http:
                async with http.post(
                    bridge.http("/api/overflow/lines/globex-overflow/takeover"), json={"until": until}
                ) as resp:
                    assert resp.status == 200
                # Nobody is on shift: the caller waits with music.
                caller = await start_caller(bridge.uri("5000"), max_seconds=40, local_ip="127.0.0.3")
                async with caller:
                    await caller.wait_for("media_active", timeout=15)
                    await asyncio.sleep(1.0)
                    switched = time.monotonic()
                    async with http.post(
                        bridge.http("/api/overflow/lines/globex-overflow/switch"), json={"on": False}
                    ) as resp:
                        assert resp.status == 200
                    answered = await phone.wait_for("state", timeout=10, state="CONFIRMED")
                    await caller.wait(timeout=20)
            calls = await bridge.wait_for_calls(lambda cs: len(cs) == 1 and cs[0]["outcome"])
            events = (await bridge.call(calls[0]["id"]))["events"]
    print(f"\nthe client's phone answered the returned caller {answered['t'] - switched:.2f} s after the switch")
    assert answered["t"] - switched < 3.0
    assert calls[0]["outcome"] == "fallback"
    fallback = next(e for e in events if e["kind"] == "fallback")["data"]
    assert (fallback["reason"], fallback["to"]) == ("window_ended", phone.uri_for("0442000000000"))
