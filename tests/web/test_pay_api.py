"""Pay statements over real HTTP: an agent sees their own only, as JSON, CSV and a printable page."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_client.web_app import WebContext, create_app
from agent_client.web_auth import Authenticator
from agent_client.web_pay import add_pay_routes
from config.tenant_file import demo_tenant_path, load_tenant
from harness.records import T0, answered_call
from store.db import create_engine, migrate
from store.pay_statements import agent_statements, write_statements
from store.records import CallRecords


def auth(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


ALICE = auth("alice", "alice-demo")
ADMIN = auth("admin", "admin-demo")
DAY = "from=2026-11-23&to=2026-11-23"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], CallRecords]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    await migrate(engine)
    tenant = load_tenant(demo_tenant_path())

    async def health() -> dict[str, Any]:
        return {"status": "ready"}

    async with CallRecords(engine) as records:
        await answered_call(records, 1, [("alice", 59.0)])
        await answered_call(records, 2, [("alice", 61.0)])
        await answered_call(records, 3, [("bob", 400.0)])
        app = create_app(WebContext(records, Authenticator(tenant), health, health))
        add_pay_routes(app, tenant)
        async with TestClient(TestServer(app)) as client:
            yield client, records
    await engine.dispose()


async def test_an_agent_sees_their_own_statement_and_nobody_else_s(
    http: tuple[TestClient[Any, Any], CallRecords],
) -> None:
    client, _ = http
    mine = await (await client.get(f"/api/pay/statement?{DAY}", headers=ALICE)).json()
    (statement,) = mine["statements"]
    assert (statement["agent"], statement["currency"], statement["total"]) == ("alice", "EUR", "1.50")
    refused = await client.get(f"/api/pay/statement?agent=bob&{DAY}", headers=ALICE)
    assert refused.status == 403
    bobs = await (await client.get(f"/api/pay/statement?agent=bob&{DAY}", headers=ADMIN)).json()
    assert bobs["statements"][0]["total"] == "2.00"
    assert (await client.get(f"/api/pay/statement?agent=bob&{DAY}", headers=auth("sam", "sam-demo"))).status == 403
    assert (await client.get("/api/pay/statement?from=yesterday", headers=ALICE)).status == 400


async def test_the_csv_and_the_page_show_the_same_rows(http: tuple[TestClient[Any, Any], CallRecords]) -> None:
    client, records = http
    csv_text = await (await client.get(f"/api/pay/statement?{DAY}&format=csv", headers=ALICE)).text()
    expected = io.StringIO()
    tenant = load_tenant(demo_tenant_path())
    write_statements(
        await agent_statements(records, tenant, "alice", T0, T0 + timedelta(days=1)), expected, as_csv=True
    )
    assert csv_text == expected.getvalue()
    page = await (await client.get(f"/api/pay/statement?{DAY}&format=html", headers=ALICE)).text()
    rows = [line.split(",") for line in csv_text.strip().splitlines()[1:]]
    for row in rows:
        for cell in row[2:]:
            assert f"<td>{cell}</td>" in page
    assert rows[-1][3] == "total EUR"
    assert rows[-1][-1] == "1.50"
