"""The records API over real HTTP (aiohttp test server), on a real SQLite store."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_client.web_app import WebContext, create_app
from agent_client.web_auth import Authenticator
from config.tenant_file import demo_tenant_path, load_tenant
from dialplan.timeline import EventKind, TimelineEvent
from store.db import create_engine, migrate
from store.records import CallRecords, NewCall

T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)


def auth(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


ADMIN = auth("admin", "admin-demo")
ACME_ADMIN = auth("acme-admin", "acme-demo")
SUPERVISOR = auth("sam", "sam-demo")
AGENT = auth("alice", "alice-demo")


async def add_call(records: CallRecords, *, client: str | None, did: str, minutes: int, outcome: str) -> str:
    at = T0 + timedelta(minutes=minutes)
    call = NewCall(sip_call_id=f"sip-{minutes}", caller="0612", did=did, source="127.0.0.1:5090", client_id=client)
    arrived = TimelineEvent(EventKind.ARRIVED, at, 100.0 + minutes * 60)
    await records.open_call(call, [arrived])
    if outcome == "rejected":
        end = TimelineEvent(EventKind.REJECTED, at, 100.0 + minutes * 60, {"status": 404})
    else:
        await records.append(call.id, [TimelineEvent(EventKind.QUEUED, at, 100.0 + minutes * 60)])
        end = TimelineEvent(EventKind.ENDED, at + timedelta(seconds=5), 105.0 + minutes * 60, {"by": "caller"})
    await records.close(call.id, [end])
    return call.id


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, str]]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    await migrate(engine)
    async with CallRecords(engine) as records:
        ids = {
            "acme": await add_call(records, client="acme", did="1001", minutes=0, outcome="abandoned"),
            "globex": await add_call(records, client="globex", did="1002", minutes=1, outcome="abandoned"),
            "stranger": await add_call(records, client=None, did="9999", minutes=2, outcome="rejected"),
        }

        async def health() -> dict[str, Any]:
            return {"status": "ready"}

        async def workers() -> dict[str, Any]:
            return {"workers": []}

        tenant = load_tenant(demo_tenant_path())
        app = create_app(WebContext(records, Authenticator(tenant), health, workers))
        async with TestClient(TestServer(app)) as test_client:
            yield test_client, ids
    await engine.dispose()


async def test_calls_need_credentials(client: tuple[TestClient[Any, Any], dict[str, str]]) -> None:
    http, _ = client
    response = await http.get("/api/calls")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert (await http.get("/api/calls", headers=auth("admin", "wrong"))).status == 401
    assert (await http.get("/api/calls", headers=auth("nobody", "x"))).status == 401


async def test_each_role_sees_its_scope(client: tuple[TestClient[Any, Any], dict[str, str]]) -> None:
    http, ids = client

    async def seen(headers: dict[str, str]) -> set[str]:
        response = await http.get("/api/calls", headers=headers)
        assert response.status == 200
        return {c["id"] for c in (await response.json())["calls"]}

    assert await seen(ADMIN) == set(ids.values())
    assert await seen(SUPERVISOR) == {ids["acme"], ids["globex"]}
    assert await seen(ACME_ADMIN) == {ids["acme"]}
    # Agents have no client scope: call records are not theirs to browse.
    assert (await http.get("/api/calls", headers=AGENT)).status == 403
    assert (await http.get(f"/api/calls/{ids['acme']}", headers=AGENT)).status == 403


async def test_a_client_admin_cannot_ask_for_another_client(
    client: tuple[TestClient[Any, Any], dict[str, str]],
) -> None:
    http, ids = client
    response = await http.get("/api/calls?client=globex", headers=ACME_ADMIN)
    assert response.status == 403
    assert (await http.get(f"/api/calls/{ids['globex']}", headers=ACME_ADMIN)).status == 404
    own = await http.get(f"/api/calls/{ids['acme']}", headers=ACME_ADMIN)
    assert own.status == 200
    body = await own.json()
    assert [e["kind"] for e in body["events"]] == ["arrived", "queued", "ended"]
    assert body["outcome"] == "abandoned"
    assert body["queue_wait_s"] == pytest.approx(5.0)


async def test_filters_and_newest_first(client: tuple[TestClient[Any, Any], dict[str, str]]) -> None:
    http, ids = client
    response = await http.get("/api/calls?since=2026-11-20T09:00:30Z&limit=10", headers=ADMIN)
    assert [c["id"] for c in (await response.json())["calls"]] == [ids["stranger"], ids["globex"]]
    response = await http.get("/api/calls?outcome=rejected", headers=ADMIN)
    assert [c["sip_status"] for c in (await response.json())["calls"]] == [404]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "since: expected an ISO-8601 date-time, got 'yesterday'"),
        ("since=2026-11-20T09:00", "since: give a time zone, e.g. 2026-11-20T09:00Z"),
        ("limit=0", "limit: expected a whole number 1-1000, got '0'"),
        ("limit=ten", "limit: expected a whole number 1-1000, got 'ten'"),
        ("offset=-1", "offset: expected a whole number 0-10000000, got '-1'"),
    ],
)
async def test_bad_queries_get_a_field_level_400(
    client: tuple[TestClient[Any, Any], dict[str, str]], query: str, message: str
) -> None:
    http, _ = client
    response = await http.get(f"/api/calls?{query}", headers=ADMIN)
    assert response.status == 400
    body = await response.json()
    assert body["error"] == message
    assert body["field"] == query.split("=")[0]


async def test_unknown_routes_and_methods_answer_json(client: tuple[TestClient[Any, Any], dict[str, str]]) -> None:
    http, _ = client
    response = await http.get("/api/nothing")
    assert response.status == 404
    assert (await response.json())["error"] == "Not Found"
    response = await http.post("/api/calls", headers=ADMIN)
    assert response.status == 405


async def test_workers_are_for_admins(client: tuple[TestClient[Any, Any], dict[str, str]]) -> None:
    http, _ = client
    assert (await http.get("/api/workers", headers=SUPERVISOR)).status == 403
    assert (await http.get("/api/workers", headers=ADMIN)).status == 200
