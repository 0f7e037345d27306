"""Pay end to end: three real calls straddling a tier boundary, then the agent's statement.

A pjsua2 caller per call and a Chromium agent who hangs up after a set
time; the tenant pays 0.50 below 5 s of talk and 1.20 from 5 s. The
statement (JSON, CSV and printable page, as the agent gets them) must put
each call in its tier, and the CSV and the page must show the same rows.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Playwright, expect

from audio import AGENT_HZ, CALLER_HZ, write_tone_wav
from harness.bridge import BridgeProcess
from harness.softphone import answer_call, go_available, launch, signed_in
from harness.tenants import TENANTS
from peers.peer_process import start_caller

pytestmark = [pytest.mark.peers]

CARD = """
[[rate_cards]]
client = "acme"
currency = "EUR"
tiers = [{ min_s = 0, max_s = 5, rate = "0.50" }, { min_s = 5, rate = "1.20" }]
"""
# Seconds the agent talks before hanging up: a second and more either side of the 5 s boundary.
TALKS = (3.0, 6.0, 8.0)


async def test_three_calls_across_a_tier_boundary_make_the_expected_statement(
    playwright: Playwright, tmp_path: Path
) -> None:
    tenant = tmp_path / "pay.toml"
    tenant.write_text((TENANTS / "softphone.toml").read_text() + CARD)
    mic = await asyncio.to_thread(write_tone_wav, tmp_path / "agent.wav", AGENT_HZ, 60.0, rate=48000)
    tone = await asyncio.to_thread(write_tone_wav, tmp_path / "caller.wav", CALLER_HZ, 60.0)
    async with BridgeProcess.configured(tmp_path, tenant=tenant) as bridge:
        await bridge.wait_ready()
        browser = await launch(playwright, mic)
        try:
            alice = await signed_in(browser, bridge, "alice", "alice-demo")
            await go_available(alice)
            for n, talk in enumerate(TALKS):
                async with await start_caller(bridge.uri("1001"), play=tone, max_seconds=40) as caller:
                    await answer_call(alice, "Acme Furniture")
                    await expect(alice.get_by_test_id("call-status")).to_contain_text("onnected", timeout=5_000)
                    await asyncio.sleep(talk)
                    await alice.get_by_test_id("hangup").click()
                    await caller.wait(timeout=15)
                await bridge.wait_for_calls(lambda cs, n=n: len(cs) == n + 1 and all(c["outcome"] for c in cs))
                # Wrap-up (1 s), then available for the next call.
                await expect(alice.get_by_test_id("state-label")).to_have_text(
                    "Available", ignore_case=True, timeout=10_000
                )
            today = datetime.now(UTC).date().isoformat()
            query = f"/api/pay/statement?from={today}&to={today}"
            fetch = (
                "async (url) => { const r = await fetch(url, {credentials: 'same-origin'}); return await r.text(); }"
            )
            statement = await alice.evaluate(f"({fetch})('{query}').then(JSON.parse)")
            csv_text = await alice.evaluate(f"({fetch})('{query}&format=csv')")
            page_html = await alice.evaluate(f"({fetch})('{query}&format=html')")
            # The earnings card shows today's total, from the same records.
            await expect(alice.get_by_test_id("earnings-today")).to_have_text("2.90 EUR", timeout=10_000)
            records = await bridge.calls()
        finally:
            await browser.close()

    (mine,) = statement["statements"]
    calls = [row for row in mine["rows"] if row["call"]]
    talks = [float(row["talk_s"]) for row in calls]
    print(f"\ntalk times measured by the server: {talks} s; statement total {mine['total']} {mine['currency']}")
    assert [row["tier"] for row in calls] == ["0-5 s", "5+ s", "5+ s"]
    assert [row["amount"] for row in calls] == ["0.50", "1.20", "1.20"]
    assert (mine["total"], mine["currency"]) == ("2.90", "EUR")
    for row, expected in zip(calls, TALKS, strict=True):
        assert float(row["talk_s"]) == pytest.approx(expected, abs=1.5), "the server's talk time is what happened"
    assert sorted(c["id"] for c in records) == sorted(row["call"] for row in calls)
    # Acme's wrap-up is 1 s: each record says how long it really lasted, measured by the server.
    wrap_ups = [c["wrap_up_s"] for c in records]
    print(f"wrap-ups: {wrap_ups} s")
    assert all(w is not None and 0.9 <= w <= 2.5 for w in wrap_ups), wrap_ups
    # The CSV and the printable page show the same rows.
    rows = list(csv.reader(io.StringIO(csv_text)))[1:]
    for row in rows:
        for cell in row[2:]:
            assert f"<td>{cell}</td>" in page_html, f"{cell!r} is in the CSV but not on the page"
    assert rows[-1][-1] == "2.90"
