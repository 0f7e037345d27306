"""Weekend overflow over real HTTP: scope, changes, audit, durability, and what admission sees."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_client.web_app import WebContext, create_app
from agent_client.web_auth import Authenticator
from agent_client.web_overflow import add_overflow_routes
from config.tenant_file import demo_tenant_path, load_tenant_text
from dialplan.clock import ManualClock
from dialplan.routing import Accept, InboundCall, Reject, route_inbound
from store.db import create_engine, migrate
from store.overflow_settings import OverflowSettings
from store.records import CallRecords
from telephony.overflow_control import OverflowControl

TUESDAY_NOON = datetime(2026, 11, 24, 11, tzinfo=UTC)  # 12:00 in Paris: no weekend window
HASH = "$argon2id$v=19$m=65536,t=3,p=4$evHPEdnDksQN//VzfmSbzw$02ZtIsxcCKJSfkV9gp9xgvL+8mxQnRbJteVAiNE2Fw0"
EXTRA = f"""
# config/demo.toml has acme-weekend (forwarded from +33140000099 by 127.0.0.1).
[[lines]]
id = "globex-weekend"
client = "globex"
dids = ["5002"]
trunk_sources = ["127.0.0.3/32"]

[lines.overflow]
takeover = "forwarded"
numbers = ["+44200000000"]
weekly = [{{ from = "sat 00:00", to = "mon 00:00" }}]

[[client_admins]]
login = "globex-admin"
name = "Globex admin"
password_hash = "{HASH}"
client = "globex"
"""


def auth(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


ACME = auth("acme-admin", "acme-demo")
GLOBEX = auth("globex-admin", "alice-demo")
AGENT = auth("alice", "alice-demo")


class Floor:
    def __init__(self, http: TestClient[Any, Any], control: OverflowControl, db: str) -> None:
        self.http = http
        self.control = control
        self.db = db


@pytest.fixture
async def floor(tmp_path: Path) -> AsyncIterator[Floor]:
    tenant = load_tenant_text(demo_tenant_path().read_text() + EXTRA, "demo.toml", demo_tenant_path().parent)
    db = f"sqlite:///{tmp_path / 'calls.db'}"
    engine = create_engine(db)
    await migrate(engine)
    control = OverflowControl(tenant=tenant, store=OverflowSettings(engine), clock=ManualClock(TUESDAY_NOON))
    await control.start()

    async def health() -> dict[str, Any]:
        return {"status": "ready"}

    async with CallRecords(engine) as records:
        app = create_app(WebContext(records, Authenticator(tenant), health, health))
        add_overflow_routes(app, control)
        async with TestClient(TestServer(app)) as http:
            yield Floor(http, control, db)
    await engine.dispose()


async def test_a_client_admin_sees_and_changes_only_their_own_lines(floor: Floor) -> None:
    lines = await (await floor.http.get("/api/overflow/lines", headers=ACME)).json()
    assert [line["line"] for line in lines["lines"]] == ["acme-weekend"]
    view = lines["lines"][0]
    assert (view["switched_on"], view["active"], view["timezone"]) == (True, False, "Europe/Paris")
    assert view["weekly"] == [{"from": "fri 18:00", "to": "mon 08:00"}]
    assert view["windows"][0] == {
        "start": "2026-11-27T17:00:00Z",
        "end": "2026-11-30T07:00:00Z",
        "source": "weekly",
        "state": "scheduled",
    }
    # Globex's line is as unknown to acme's admin as a line that does not exist.
    for path in ("/api/overflow/lines/globex-weekend", "/api/overflow/lines/nope"):
        assert (await floor.http.get(path, headers=ACME)).status == 404
    toggled = await floor.http.post("/api/overflow/lines/globex-weekend/switch", json={"on": False}, headers=ACME)
    assert toggled.status == 404
    assert floor.control.current()["globex-weekend"].switched_on
    assert (await floor.http.get("/api/overflow/lines", headers=AGENT)).status == 403
    assert (await floor.http.get("/api/overflow/lines")).status == 401


async def test_changes_are_audited_durable_and_decide_admission(floor: Floor) -> None:
    http = floor.http
    pbx_call = InboundCall("5001", ipaddress.ip_address("127.0.0.1"), diverted=("+33140000099",))
    tenant = floor.control.tenant
    assert isinstance(route_inbound(tenant, pbx_call, TUESDAY_NOON, floor.control.current()), Reject)

    until = (TUESDAY_NOON + timedelta(hours=6)).isoformat()
    taken = await http.post("/api/overflow/lines/acme-weekend/takeover", json={"until": until}, headers=ACME)
    assert taken.status == 200
    assert (await taken.json())["active"] is True
    assert route_inbound(tenant, pbx_call, TUESDAY_NOON, floor.control.current()) == Accept(
        "acme", "acme-weekend", "acme"
    )
    off = await http.post("/api/overflow/lines/acme-weekend/switch", json={"on": False}, headers=ACME)
    assert (await off.json())["active"] is False
    assert isinstance(route_inbound(tenant, pbx_call, TUESDAY_NOON, floor.control.current()), Reject)
    schedule = {"weekly": [{"from": "fri 20:00", "to": "mon 07:00"}], "holidays": ["2026-12-25"]}
    edited = await http.put("/api/overflow/lines/acme-weekend/schedule", json=schedule, headers=ACME)
    assert (await edited.json())["holidays"] == ["2026-12-25"]

    # Bad bodies: a clear error, and nothing changed or audited.
    for body in ({"on": "yes"}, [1], {}):
        bad = await http.post("/api/overflow/lines/acme-weekend/switch", json=body, headers=ACME)
        assert bad.status == 400
        assert "error" in await bad.json()
    bad_schedule = {"weekly": [{"from": "fry 20:00", "to": "mon 07:00"}]}
    refused = await http.put("/api/overflow/lines/acme-weekend/schedule", json=bad_schedule, headers=ACME)
    assert (refused.status, (await refused.json())["error"]) == (
        400,
        "schedule: expected a day and a time such as 'fri 18:00', got 'fry 20:00'",
    )

    changes = (await (await http.get("/api/overflow/audit", headers=ACME)).json())["changes"]
    assert [(c["change"], c["actor"], c["line_id"]) for c in changes] == [
        ("schedule", "acme-admin", "acme-weekend"),
        ("switch", "acme-admin", "acme-weekend"),
        ("takeover", "acme-admin", "acme-weekend"),
    ]
    assert (changes[1]["old"], changes[1]["new"]) == ({"switched_on": True}, {"switched_on": False})
    assert changes[0]["old"]["weekly"] == [{"from": "fri 18:00", "to": "mon 08:00"}]
    assert (await (await http.get("/api/overflow/audit", headers=GLOBEX)).json())["changes"] == []

    # A restart finds the line as its admin left it.
    engine = create_engine(floor.db)
    again = OverflowControl(tenant=tenant, store=OverflowSettings(engine), clock=ManualClock(TUESDAY_NOON))
    await again.start()
    await engine.dispose()
    restored = again.current()["acme-weekend"]
    assert not restored.switched_on
    assert restored.schedule.holidays == floor.control.current()["acme-weekend"].schedule.holidays
    assert len(restored.schedule.adhoc) == 1
