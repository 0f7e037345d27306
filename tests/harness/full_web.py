"""The bridge's whole web app (agent_client.web_bridge) on real stores, with a thing of each kind per client.

For the tests that go over every route: the RBAC matrix and the API fuzzing.
The services that need SIP workers (the agents' dispatcher, supervision's)
are stood in for: the agent desk by a recording fake, supervision by the real
`Supervision` over a dispatcher fake that has one live call per client.

People: the demo tenant's, plus `olga` who supervises globex only and
`globex-admin`, both with the password `alice-demo`. Each of acme and
globex has a closed call, a recording of it, a live call and an overflow line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp import web

from agent_client.web_auth import Authenticator
from agent_client.web_bridge import bridge_app
from agent_client.web_edge import Edge
from agent_client.web_sessions import SessionStore
from audio import AGENT_HZ, CALLER_HZ, write_tone_wav
from config.tenant_file import demo_tenant_path, load_tenant_text
from dialplan.clock import ManualClock
from dialplan.tenant import Tenant
from dialplan.timeline import EventKind, TimelineEvent
from harness.records import T0
from store.db import create_engine, migrate
from store.live_memory import MemoryLiveState
from store.overflow_settings import OverflowSettings
from store.recordings import Recordings
from store.records import CallRecords, NewCall
from telephony.call_recordings import CallRecordings
from telephony.dispatcher import LiveCall, QueuedCall
from telephony.overflow_control import OverflowControl
from telephony.supervision import Supervision

# The argon2 hash of "alice-demo".
HASH = "$argon2id$v=19$m=65536,t=3,p=4$evHPEdnDksQN//VzfmSbzw$02ZtIsxcCKJSfkV9gp9xgvL+8mxQnRbJteVAiNE2Fw0"
EXTRA = f"""
[[lines]]
id = "globex-weekend"
client = "globex"
dids = ["5002"]
trunk_sources = ["127.0.0.3/32"]

[lines.overflow]
takeover = "forwarded"
numbers = ["+44200000000"]
weekly = [{{ from = "sat 00:00", to = "mon 00:00" }}]

[[supervisors]]
login = "olga"
name = "Olga Globex"
password_hash = "{HASH}"
clients = ["globex"]

[[client_admins]]
login = "globex-admin"
name = "Globex admin"
password_hash = "{HASH}"
client = "globex"
"""
PASSWORDS = {
    "admin": "admin-demo",
    "sam": "sam-demo",
    "olga": "alice-demo",
    "acme-admin": "acme-demo",
    "globex-admin": "alice-demo",
    "alice": "alice-demo",
    "bob": "bob-demo",
}
CLIENTS = ("acme", "globex")
LINES = {"acme": "acme-weekend", "globex": "globex-weekend"}
NOW = T0 + timedelta(hours=1)


def basic(login: str) -> dict[str, str]:
    token = base64.b64encode(f"{login}:{PASSWORDS[login]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def matrix_tenant() -> Tenant:
    tenant = load_tenant_text(demo_tenant_path().read_text() + EXTRA, "demo.toml", demo_tenant_path().parent)
    clients = {
        cid: replace(client, live_listening=True, recordings_for_client_admin=True)
        for cid, client in tenant.clients.items()
    }
    return replace(tenant, clients=clients)


@dataclass
class AgentDesk:
    """The agents' dispatcher, as far as the web sees it."""

    handled: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def agent_connected(self, login: str, link: Any) -> None:
        link.send({"v": 1, "type": "hello", "agent": {"login": login}})

    async def agent_disconnected(self, login: str, link: Any) -> None:
        pass

    async def handle(self, login: str, message: dict[str, Any]) -> None:
        self.handled.append((login, message))


class LiveFloor:
    """What Supervision asks of the dispatcher: one live call per client, and an empty floor."""

    def __init__(self, tenant: Tenant) -> None:
        self.watchers: list[Any] = []
        self.no_shows: dict[str, list[Any]] = {}
        self.recording_started: list[tuple[str, str]] = []
        self._calls = [
            LiveCall(QueuedCall(f"live-{cid}", 0, 1, cid, "0612", T0), agent, f"rtc-{cid}", NOW, cid)
            for cid, agent in (("acme", "alice"), ("globex", "bob"))
        ]
        floor_agent = SimpleNamespace(day=None, calls_today=0, talk_s_today=0.0)
        self.router = SimpleNamespace(
            queues={}, callers={}, waiting=lambda queue_id: [], agents=defaultdict(lambda: floor_agent)
        )
        self.stats = SimpleNamespace(history=lambda client_id: [])

    def live_calls(self) -> list[LiveCall]:
        return list(self._calls)

    def live_call(self, call_id: str) -> LiveCall | None:
        return next((c for c in self._calls if c.call.call_id == call_id), None)

    def recording_view(self, call: QueuedCall) -> str:
        return "available"

    async def start_recording(self, call_id: str, login: str) -> None:
        self.recording_started.append((call_id, login))


@dataclass
class FullApp:
    app: web.Application
    tenant: Tenant
    # Per client: a closed call (with a recording), a live call, an overflow line.
    calls: dict[str, str]
    live: dict[str, str]
    lines: dict[str, str]
    sessions: SessionStore
    desk: AgentDesk
    floor: LiveFloor
    overflow: OverflowControl


async def _closed_call(records: CallRecords, n: int, client: str, agent: str) -> str:
    start, mono = T0 + timedelta(minutes=n), 1000.0 + n * 600
    call = NewCall(sip_call_id=f"sip-{n}", caller="0612", did="1001", source="127.0.0.1:5090", client_id=client)
    await records.open_call(call, [TimelineEvent(EventKind.ARRIVED, start, mono)])
    await records.append(
        call.id,
        [
            TimelineEvent(EventKind.QUEUED, start, mono),
            TimelineEvent(EventKind.ANSWERED, start + timedelta(seconds=5), mono + 5, {"agent": agent}),
        ],
    )
    end = TimelineEvent(EventKind.ENDED, start + timedelta(seconds=65), mono + 65, {"by": "caller"})
    await records.close(call.id, [end])
    return call.id


async def _recorded(service: CallRecordings, call_id: str, client: str) -> None:
    capture = service.capture(call_id, client, "policy")
    capture.caller.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(write_tone_wav, capture.caller, CALLER_HZ, 1.0)
    await asyncio.to_thread(write_tone_wav, capture.agent, AGENT_HZ, 1.0)
    assert await service.finish(capture) is not None


@contextlib.asynccontextmanager
async def full_app(
    tmp_path: Path, edge: Edge | None = None, sessions: SessionStore | None = None
) -> AsyncIterator[FullApp]:
    engine = create_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    await migrate(engine)
    tenant = await asyncio.to_thread(matrix_tenant)
    clock = ManualClock(NOW)
    overflow = OverflowControl(tenant=tenant, store=OverflowSettings(engine), clock=clock)
    await overflow.start()
    floor = LiveFloor(tenant)
    live_state = MemoryLiveState()
    supervision = Supervision(
        tenant=tenant,
        dispatcher=floor,  # type: ignore[arg-type]
        live=live_state,
        workers=None,  # type: ignore[arg-type]
        recorder=None,  # type: ignore[arg-type]
        clock=clock,
    )

    async def health() -> dict[str, Any]:
        return {"status": "ready"}

    async def workers() -> dict[str, Any]:
        return {"workers": []}

    try:
        async with CallRecords(engine) as records:
            service = CallRecordings(tmp_path / "rec", Recordings(engine), lambda *_: None, tenant, clock, settle_s=0)
            calls = {}
            for n, (client, agent) in enumerate((("acme", "alice"), ("globex", "bob"))):
                calls[client] = await _closed_call(records, n, client, agent)
                await _recorded(service, calls[client], client)
            sessions = sessions or SessionStore()
            desk = AgentDesk()
            app = bridge_app(
                tenant=tenant,
                records=records,
                health=health,
                workers=workers,
                desk=desk,
                supervision=supervision,
                overflow=overflow,
                recordings=service,
                sessions=sessions,
                edge=edge or Edge(),
                authenticator=Authenticator(tenant),
            )
            live = {c: f"live-{c}" for c in CLIENTS}
            yield FullApp(app, tenant, calls, live, dict(LINES), sessions, desk, floor, overflow)
            await supervision.stop()
    finally:
        await engine.dispose()
