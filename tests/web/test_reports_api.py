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
from store.agent_states import AgentStateLog
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


# Each agent's state changes: (login, state, reason, minutes after T0 = 10:00 UTC).
STATE_CHANGES = [
    # alice: 10:00-10:30 staffed 1800 s, on a call 60 s + wrap-up 30 s; 11:00-11:15 staffed 900 s, busy 60 s.
    ("alice", "available", None, 0),
    ("alice", "on_call", None, 70 / 60),
    ("alice", "wrap_up", None, 130 / 60),
    ("alice", "available", None, 160 / 60),
    ("alice", "paused", "break", 30),
    ("alice", "paused", "disconnected", 45),
    ("alice", "paused", "signed in", 59),
    ("alice", "available", None, 60),
    ("alice", "on_call", None, 70 + 5 / 60),
    ("alice", "wrap_up", None, 70 + 35 / 60),
    ("alice", "available", None, 70 + 65 / 60),
    ("alice", "paused", "disconnected", 75),
    # bob: 10:00-10:10 staffed 600 s, on a call 120 s + wrap-up 30 s; 11:00-11:30 staffed 1800 s, no call.
    ("bob", "available", None, 0),
    ("bob", "on_call", None, 2.5),
    ("bob", "wrap_up", None, 4.5),
    ("bob", "available", None, 5),
    ("bob", "paused", "break", 10),
    ("bob", "available", None, 60),
    ("bob", "paused", "disconnected", 90),
    # zoe serves none of the demo clients: only a tenant admin sees her.
    ("zoe", "available", None, 0),
    ("zoe", "paused", "disconnected", 30),
]


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
        async with AgentStateLog(engine, "node-a") as states:
            for login, state, reason, minutes in STATE_CHANGES:
                states.changed(login, state, reason, T0 + timedelta(minutes=minutes))
        tenant = load_tenant(demo_tenant_path())
        app = create_app(WebContext(records, Authenticator(tenant), health, health))
        add_report_routes(app, tenant)
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
            "staffed_s": None,  # an agent's time is not split by client
            "occupancy": None,
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
            "staffed_s": None,
            "occupancy": None,
        },
    ]
    agents = (await (await http.get(f"/api/reports?group=agent&{DAY}", headers=ADMIN)).json())["rows"]
    assert [(r["group"], r["answered"], r["service_level"], r["avg_speed_of_answer_s"]) for r in agents] == [
        ("alice", 2, 1.0, 7.5),
        ("bob", 1, 0.0, 30.0),
        ("zoe", 0, None, None),
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
        "period,group,offered,answered,abandoned,fallback,service_level,avg_speed_of_answer_s,avg_handle_s,"
        "staffed_s,occupancy"
    )
    assert csv_text.splitlines()[1] == "2026-11-23,acme,4,2,2,0,0.3333,20.0,90.0,,"


async def test_occupancy_per_agent_matches_the_hand_computed_one_in_json_and_csv(http: TestClient[Any, Any]) -> None:
    days = (await (await http.get(f"/api/reports?group=agent&{DAY}", headers=ADMIN)).json())["rows"]
    assert [(r["group"], r["staffed_s"], r["occupancy"]) for r in days] == [
        ("alice", 2700.0, 0.0556),  # (90 + 60) / (1800 + 900)
        ("bob", 2400.0, 0.0625),  # 150 / (600 + 1800)
        ("zoe", 1800.0, 0.0),
    ]
    hours = (await (await http.get(f"/api/reports?group=agent&by=hour&{DAY}", headers=ADMIN)).json())["rows"]
    assert [(r["period"], r["group"], r["answered"], r["staffed_s"], r["occupancy"]) for r in hours] == [
        ("2026-11-23T10:00Z", "alice", 1, 1800.0, 0.05),
        ("2026-11-23T10:00Z", "bob", 1, 600.0, 0.25),
        ("2026-11-23T10:00Z", "zoe", 0, 1800.0, 0.0),
        ("2026-11-23T11:00Z", "alice", 1, 900.0, 0.0667),
        ("2026-11-23T11:00Z", "bob", 0, 1800.0, 0.0),  # staffed without a call: a row all the same
    ]
    csv_text = await (await http.get(f"/api/reports?group=agent&{DAY}&format=csv", headers=ADMIN)).text()
    assert csv_text.splitlines()[1:] == [
        "2026-11-23,alice,2,2,0,0,1.0,7.5,45.0,2700.0,0.0556",
        "2026-11-23,bob,1,1,0,0,0.0,30.0,120.0,2400.0,0.0625",
        "2026-11-23,zoe,0,0,0,0,,,,1800.0,0.0",
    ]


async def test_a_scoped_viewer_sees_the_occupancy_of_the_agents_of_their_clients(http: TestClient[Any, Any]) -> None:
    for who in (auth("acme-admin", "acme-demo"), auth("sam", "sam-demo")):
        rows = (await (await http.get(f"/api/reports?group=agent&{DAY}", headers=who)).json())["rows"]
        assert [r["group"] for r in rows] == ["alice", "bob"]
        # An agent's occupancy covers all their work, whichever client's calls the rows count.
        assert [r["occupancy"] for r in rows] == [0.0556, 0.0625]
    narrowed = f"/api/reports?group=agent&client=globex&{DAY}"
    rows = (await (await http.get(narrowed, headers=ADMIN)).json())["rows"]
    assert [(r["group"], r["answered"]) for r in rows] == [("alice", 1), ("bob", 0)]
