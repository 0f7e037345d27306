"""Recordings over real HTTP: who may play them, what they get, and the audit of every attempt."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from agent_client.web_app import WebContext, create_app
from agent_client.web_auth import Authenticator
from agent_client.web_recordings import add_recording_routes
from audio import AGENT_HZ, CALLER_HZ, write_tone_wav
from config.tenant_file import demo_tenant_path, load_tenant
from dialplan.clock import ManualClock
from dialplan.tenant import Supervisor, Tenant
from harness.records import T0, answered_call
from store.db import create_engine, migrate
from store.recordings import Recordings
from store.records import CallRecords
from telephony.call_recordings import CallRecordings


def auth(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


SAM = auth("sam", "sam-demo")  # supervises acme and globex
OLGA = auth("olga", "olga-demo")  # supervises globex only
ALICE = auth("alice", "alice-demo")
ACME_ADMIN = auth("acme-admin", "acme-demo")
ADMIN = auth("admin", "admin-demo")


@dataclass
class Setup:
    http: TestClient[Any, Any]
    service: CallRecordings
    clock: ManualClock
    call_id: str


def with_olga(tenant: Tenant) -> Tenant:
    olga = Supervisor("olga", "Olga", PasswordHasher().hash("olga-demo"), frozenset({"globex"}))
    return replace(tenant, supervisors={**tenant.supervisors, "olga": olga})


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    engine = create_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    await migrate(engine)
    tenant = await asyncio.to_thread(with_olga, load_tenant(demo_tenant_path()))
    clock = ManualClock(T0 + timedelta(hours=1))

    async def health() -> dict[str, Any]:
        return {"status": "ready"}

    async with CallRecords(engine) as records:
        service = CallRecordings(tmp_path / "rec", Recordings(engine), lambda *_: None, tenant, clock, settle_s=0)
        call_id = await answered_call(records, 1, [("alice", 4.0)])
        capture = service.capture(call_id, "acme", "policy")
        capture.caller.parent.mkdir(parents=True)
        await asyncio.to_thread(write_tone_wav, capture.caller, CALLER_HZ, 4.0)
        await asyncio.to_thread(write_tone_wav, capture.agent, AGENT_HZ, 4.0)
        assert await service.finish(capture) is not None
        app = create_app(WebContext(records, Authenticator(tenant), health, health))
        add_recording_routes(app, service)
        async with TestClient(TestServer(app)) as client:
            yield Setup(client, service, clock, call_id)
    await engine.dispose()


async def audit(setup: Setup) -> list[tuple[str, bool, str]]:
    found = await setup.service.store.accesses(call_id=setup.call_id)
    return [(a.actor, a.granted, a.detail) for a in reversed(found)]


async def test_in_scope_supervisors_play_it_and_everyone_else_is_refused_and_audited(setup: Setup) -> None:
    http, url = setup.http, f"/api/recordings/{setup.call_id}"
    stored = setup.service.path(await setup.service.store.get(setup.call_id))  # type: ignore[arg-type]

    whole = await http.get(url, headers=SAM)
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "audio/ogg"
    assert whole.headers["Cache-Control"] == "no-store"
    assert await whole.read() == stored.read_bytes()
    part = await http.get(url, headers={**SAM, "Range": "bytes=0-99"})
    assert part.status == 206
    assert len(await part.read()) == 100
    assert (await http.get(url, headers=ADMIN)).status == 200

    olga = await http.get(url, headers=OLGA)
    assert olga.status == 403
    assert (await olga.json())["error"] == "That call belongs to a client outside your scope."
    assert (await http.get(url, headers=ALICE)).status == 403
    client_admin = await http.get(url, headers=ACME_ADMIN)
    assert client_admin.status == 403
    assert (await client_admin.json())["error"] == "Acme Furniture does not let its own admins play recordings."
    assert (await http.get(url)).status == 401, "unauthenticated: nobody to audit"
    assert (await http.get("/api/recordings/nosuchcall", headers=SAM)).status == 404

    assert await audit(setup) == [
        ("sam", True, "whole file"),
        ("sam", True, "bytes=0-99"),
        ("admin", True, "whole file"),
        ("olga", False, "That call belongs to a client outside your scope."),
        ("alice", False, "Agents do not play recordings."),
        ("acme-admin", False, "Acme Furniture does not let its own admins play recordings."),
    ]
    probes = await setup.service.store.accesses(call_id="nosuchcall")
    assert [(a.actor, a.granted, a.detail) for a in probes] == [("sam", False, "no such recording")]

    trail = await http.get(f"{url}/access", headers=SAM)
    assert [a["actor"] for a in (await trail.json())["accesses"]][:2] == ["acme-admin", "alice"]
    assert (await http.get(f"{url}/access", headers=OLGA)).status == 403


async def test_a_client_that_allows_it_lets_its_admins_play_and_list_its_recordings(setup: Setup) -> None:
    http, url = setup.http, f"/api/recordings/{setup.call_id}"
    tenant = setup.service.tenant
    acme = replace(tenant.clients["acme"], recordings_for_client_admin=True)
    setup.service.tenant = replace(tenant, clients={**tenant.clients, "acme": acme})
    assert (await http.get(url, headers=ACME_ADMIN)).status == 200
    listed = await http.get("/api/recordings?from=2026-11-20&to=2026-11-23", headers=ACME_ADMIN)
    (only,) = (await listed.json())["recordings"]
    assert (only["call_id"], only["duration_s"], only["url"]) == (setup.call_id, 4.0, url)
    olga = await http.get("/api/recordings?from=2026-11-20&to=2026-11-23", headers=OLGA)
    assert (await olga.json())["recordings"] == []
    assert (await http.get("/api/recordings", headers=ALICE)).status == 403
    bad = await http.get("/api/recordings?from=yesterday", headers=SAM)
    assert bad.status == 400
    assert (await bad.json())["field"] == "from"


async def test_a_purged_recording_is_gone_and_says_so(setup: Setup) -> None:
    setup.clock.advance(90 * 86400)
    assert await setup.service.purge() == 1
    gone = await setup.http.get(f"/api/recordings/{setup.call_id}", headers=SAM)
    assert gone.status == 410
    assert (await gone.json())["error"].startswith("purged on ")
    assert (await audit(setup))[-1][:2] == ("sam", False)
