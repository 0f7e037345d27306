"""Statements from real call records (SQLite): tiers, split calls, the CLI and its CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from config.tenant_file import demo_tenant_path, load_tenant
from harness.records import T0, answered_call
from store.db import create_engine, migrate
from store.pay_statements import agent_statements, write_statements
from store.records import CallRecords

ROOT = Path(__file__).resolve().parents[2]


async def test_statements_price_each_agent_s_share_and_the_cli_prints_the_same(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    engine = create_engine(url)
    await migrate(engine)
    tenant = load_tenant(demo_tenant_path())
    async with CallRecords(engine) as records:
        # The demo's acme card: 0.40 below 60 s, 1.10 from 60 s, 2.00 from 300 s (EUR).
        await answered_call(records, 1, [("alice", 59.0)])
        await answered_call(records, 2, [("alice", 61.0)])
        split = await answered_call(records, 3, [("alice", 40.0), ("bob", 320.0)])
        found = await agent_statements(records, tenant, "alice", T0, T0 + timedelta(days=1))
        bobs = await agent_statements(records, tenant, "bob", T0, T0 + timedelta(days=1))
    await engine.dispose()

    (alice,) = found
    assert [(line.call.talk_s, line.amount) for line in alice.lines] == [
        (59.0, Decimal("0.40")),
        (61.0, Decimal("1.10")),
        (40.0, Decimal("0.40")),  # her share of the split call, until she was lost
    ]
    assert (alice.currency, alice.total) == ("EUR", Decimal("1.90"))
    (bob,) = bobs
    assert [(line.call.call_id, line.call.talk_s, line.amount) for line in bob.lines] == [
        (split, 320.0, Decimal("2.00"))
    ]

    printed = io.StringIO()
    write_statements(found, printed, as_csv=True)
    env = {**os.environ, "HOTLINE_DATABASE_URL": url}
    cli = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "hotline",
            "pay",
            "--agent",
            "alice",
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-23",
            "--csv",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout == printed.getvalue()
    rows = list(csv.DictReader(io.StringIO(cli.stdout)))
    assert rows[-1]["client"] == "total EUR"
    assert rows[-1]["amount"] == "1.90"
    tiers = [(r["client"], r["tier"], r["amount"]) for r in rows if r["client"].startswith("tier")]
    assert tiers == [("tier 0-60 s", "2 calls", "0.80"), ("tier 60-300 s", "1 calls", "1.10")]
