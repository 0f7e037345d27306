"""Reports over real HTTP on scripted calls, against figures worked out by hand."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_client.web_app import WebContext, create_app
from agent_client.web_auth import Authenticator
from agent_client.web_reports import add_report_routes
from config.tenant_file import demo_tenant_path, load_tenant
from dialplan.timeline import EventKind, TimelineEvent
from harness.records import T0
from store.db import create_engine, migrate
from store.records import CallRecords, NewCall


def auth(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


async def scripted(
    records: CallRecords, n: int, client: str, *, wait_s: float, talk_s: float | None = None, agent: str = ""
) -> None:
    """A call queued at T0 + n minutes that waits `wait_s`, then is answered (and talks) or abandons."""
    at, mono = T0 + timedelta(minutes=n), 1000.0 + n * 600

    def event(kind: str, after_s: float, **data: object) -> TimelineEvent:
        return TimelineEvent(kind, at + timedelta(seconds=after_s), mono + after_s, data)

    call = NewCall(sip_call_id=f"s{n}", caller="0612", did="1001", source="127.0.0.1:5090", client_id=client)
    await records.open_call(call, [event(EventKind.ARRIVED, 0)])
    await records.append(call.id, [event(EventKind.QUEUED, 0, queue=client)])
    if talk_s is None:
        await records.close(call.id, [event(EventKind.ENDED, wait_s, by="caller")])
        return
    await records.append(call.id, [event(EventKind.ANSWERED, wait_s, agent=agent)])
    await records.close(call.id, [event(EventKind.ENDED, wait_s + talk_s, by="caller")])


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    await migrate(engine)

    async def health() -> dict[str, Any]:
        return {"status": "ready"}

    async with CallRecords(engine) as records:
        await scripted(records, 1, "acme", wait_s=10, talk_s=60, agent="alice")
        await scripted(records, 2, "acme", wait_s=30, talk_s=120, agent="bob")
        await scripted(records, 3, "acme", wait_s=40)  # abandoned
        await scripted(records, 4, "acme", wait_s=3)  # abandoned within 5 s: out of the service level
        refused = NewCall(sip_call_id="r", caller="0612", did="9999", source="127.0.0.1:5090", client_id="acme")
        await records.open_call(refused, [TimelineEvent(EventKind.ARRIVED, T0, 1.0)])
        await records.close(refused.id, [TimelineEvent(EventKind.REJECTED, T0, 1.0, {"status": 480})])
        await scripted(records, 70, "globex", wait_s=5, talk_s=30, agent="alice")
        app = create_app(WebContext(records, Authenticator(load_tenant(demo_tenant_path())), health, health))
        add_report_routes(app)
        async with TestClient(TestServer(app)) as client:
            yield client
    await engine.dispose()


DAY = "from=2026-11-23&to=2026-11-23"
ADMIN = auth("admin", "admin-demo")


async def test_figures_per_client_and_per_agent_match_the_hand_computed_ones(http: TestClient[Any, Any]) -> None:
    rows = (await (await http.get(f"/api/reports?group=client&by=day&{DAY}", headers=ADMIN)).json())["rows"]
    assert rows == [
        {
            "period": "2026-11-23",
            "group": "acme",
            "offered": 4,  # the refused call never was
            "answered": 2,
            "abandoned": 2,
            "fallback": 0,
            "service_level": 0.3333,  # 1 answered within 20 s, of 2 answered + 1 abandoned after 5 s
            "avg_speed_of_answer_s": 20.0,
            "avg_handle_s": 90.0,
        },
        {
            "period": "2026-11-23",
            "group": "globex",
            "offered": 1,
            "answered": 1,
            "abandoned": 0,
            "fallback": 0,
            "service_level": 1.0,
            "avg_speed_of_answer_s": 5.0,
            "avg_handle_s": 30.0,
        },
    ]
    agents = (await (await http.get(f"/api/reports?group=agent&{DAY}", headers=ADMIN)).json())["rows"]
    assert [(r["group"], r["answered"], r["service_level"], r["avg_speed_of_answer_s"]) for r in agents] == [
        ("alice", 2, 1.0, 7.5),
        ("bob", 1, 0.0, 30.0),
    ]
    hours = (await (await http.get(f"/api/reports?group=queue&by=hour&{DAY}", headers=ADMIN)).json())["rows"]
    assert [(r["period"], r["group"], r["offered"]) for r in hours] == [
        ("2026-11-23T10:00Z", "acme", 4),
        ("2026-11-23T11:00Z", "globex", 1),
    ]


async def test_reports_are_scoped_and_come_as_csv(http: TestClient[Any, Any]) -> None:
    acme_admin = auth("acme-admin", "acme-demo")
    rows = (await (await http.get(f"/api/reports?{DAY}", headers=acme_admin)).json())["rows"]
    assert [r["group"] for r in rows] == ["acme"]
    assert (await http.get(f"/api/reports?client=globex&{DAY}", headers=acme_admin)).status == 403
    assert (await http.get(f"/api/reports?{DAY}", headers=auth("alice", "alice-demo"))).status == 403
    assert (await http.get("/api/reports?group=planet", headers=ADMIN)).status == 400
    csv_text = await (await http.get(f"/api/reports?{DAY}&format=csv", headers=auth("sam", "sam-demo"))).text()
    assert csv_text.splitlines()[0] == (
        "period,group,offered,answered,abandoned,fallback,service_level,avg_speed_of_answer_s,avg_handle_s"
    )
    assert csv_text.splitlines()[1] == "2026-11-23,acme,4,2,2,0,0.3333,20.0,90.0"
