"""The `hotline` command's own surface: exit codes and exact output."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dialplan.timeline import EventKind, TimelineEvent
from store.db import create_engine, migrate
from store.records import CallRecords, NewCall

REPO = Path(__file__).resolve().parents[2]
TENANTS = REPO / "tests" / "fixtures" / "tenants"


def hotline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_check_config_accepts_the_demo_tenant() -> None:
    result = hotline("check-config", str(REPO / "config" / "demo.toml"))
    assert result.returncode == 0
    assert result.stdout.endswith("ok: tenant 'demo', 2 clients, 4 lines, 2 agents, 2 shifts\n")


def test_check_config_prints_every_problem_and_exits_2() -> None:
    result = hotline("check-config", str(TENANTS / "tenants.toml"))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert "tenants.toml: clients[1].timezone: unknown time zone 'Europe/Pariss'" in lines
    assert len(lines) == 9


def test_bad_settings_are_named_and_exit_2() -> None:
    result = hotline("calls", env={"HOTLINE_SIP_PORT": "sixty", "HOTLINE_LOG_FORMAT": "xml"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "hotline: HOTLINE_SIP_PORT: expected a port number 1-65535, got 'sixty'",
        "hotline: HOTLINE_LOG_FORMAT: expected console or json, got 'xml'",
    ]


def test_calls_prints_a_table_and_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    now = datetime.now(UTC).replace(microsecond=0)

    async def seed() -> None:
        engine = create_engine(url)
        await migrate(engine)
        async with CallRecords(engine) as records:
            for i, did in enumerate(("1001", "1002")):
                call = NewCall(
                    sip_call_id=f"s{i}",
                    caller="0612345678",
                    did=did,
                    source="127.0.0.1:1",
                    client_id="acme" if did == "1001" else "globex",
                )
                at = now - timedelta(minutes=10 - i)
                await records.open_call(call, [TimelineEvent(EventKind.ARRIVED, at, 10.0 + i)])
                await records.append(call.id, [TimelineEvent(EventKind.QUEUED, at, 10.0 + i)])
                await records.close(call.id, [TimelineEvent(EventKind.ENDED, at, 17.5 + i, {"by": "caller"})])
        await engine.dispose()

    asyncio.run(seed())
    env = {"HOTLINE_DATABASE_URL": url}
    table = hotline("calls", "--since", "1h", env=env)
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split() == [
        "arrived",
        "(UTC)",
        "call",
        "client",
        "did",
        "caller",
        "outcome",
        "status",
        "wait",
        "s",
        "talk",
        "s",
        "total",
        "s",
    ]
    assert len(rows) == 3
    assert rows[1].split()[3:7] == ["globex", "1002", "0612345678", "abandoned"]
    as_json = hotline("calls", "--json", "--client", "acme", env=env)
    assert as_json.returncode == 0, as_json.stderr
    records = json.loads(as_json.stdout)
    assert [(r["client_id"], r["outcome"], r["queue_wait_s"]) for r in records] == [("acme", "abandoned", 7.5)]
    empty = hotline("calls", "--since", "2099-01-01", env=env)
    assert empty.stdout == "no calls found\n"
