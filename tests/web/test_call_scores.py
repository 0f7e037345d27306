"""Supervisors score calls over real HTTP; the scores reach the agents' statements."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_client.web_app import WebContext, create_app
from agent_client.web_auth import Authenticator
from agent_client.web_supervisor import add_supervisor_routes
from config.tenant_file import demo_tenant_path, load_tenant
from harness.records import T0, answered_call
from store.db import create_engine, migrate
from store.pay_statements import agent_statements
from store.records import CallRecords


def auth(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


SAM = auth("sam", "sam-demo")


class Desk:
    """Only what scoring asks of the supervision service: the supervisor's clients."""

    def scope(self, login: str) -> frozenset[str]:
        return frozenset({"acme", "globex"}) if login == "sam" else frozenset()

    def calls(self, login: str) -> list[Any]:
        return []

    def live_call(self, login: str, call_id: str) -> Any:
        raise ValueError("not live")


@pytest.fixture
async def floor(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], CallRecords, str]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    await migrate(engine)

    async def health() -> dict[str, Any]:
        return {"status": "ready"}

    async with CallRecords(engine) as records:
        call_id = await answered_call(records, 1, [("alice", 61.0)])
        app = create_app(WebContext(records, Authenticator(load_tenant(demo_tenant_path())), health, health))
        add_supervisor_routes(app, supervision=Desk())  # type: ignore[arg-type]
        async with TestClient(TestServer(app)) as client:
            yield client, records, call_id
    await engine.dispose()


async def test_a_supervisor_scores_a_call_of_their_client_and_the_statement_shows_it(
    floor: tuple[TestClient[Any, Any], CallRecords, str],
) -> None:
    http, records, call_id = floor
    path = f"/api/supervisor/calls/{call_id}/score"
    first = await http.post(path, json={"score": 2, "comment": "rushed"}, headers=SAM)
    assert first.status == 200
    revised = await (await http.post(path, json={"score": 4, "comment": "fine on a re-listen"}, headers=SAM)).json()
    assert [(s["supervisor"], s["score"]) for s in revised["scores"]] == [("sam", 2), ("sam", 4)]

    assert (await http.post(path, json={"score": 4}, headers=auth("alice", "alice-demo"))).status == 403
    assert (await http.post(path, json={"score": 4}, headers=auth("acme-admin", "acme-demo"))).status == 403
    assert (await http.post("/api/supervisor/calls/nope/score", json={"score": 4}, headers=SAM)).status == 404
    for bad in ({"score": 6}, {"score": True}, {"score": "5"}, {"score": 3, "comment": 7}, [1]):
        assert (await http.post(path, json=bad, headers=SAM)).status == 400

    tenant = load_tenant(demo_tenant_path())
    (statement,) = await agent_statements(records, tenant, "alice", T0, T0 + timedelta(days=1))
    assert statement.average_score == Decimal(4), "the latest score counts"
