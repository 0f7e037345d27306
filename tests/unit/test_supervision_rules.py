"""Supervision's rules, with the real dispatcher, in-memory state and a scripted worker."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from test_dispatcher import MON_9, SDP, Floor, Recorder, Worker, tenant

from dialplan.clock import ManualClock
from dialplan.tenant import Supervisor
from store.live_memory import MemoryLiveState
from telephony.dispatcher import Dispatcher
from telephony.supervision import Supervision, SupervisionRefused


class Board:
    """A supervisor's page: every message the server sent it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]


@pytest.fixture
async def floor() -> Any:
    base = tenant()
    clients = dict(base.clients)
    clients["globex"] = replace(clients["globex"], live_listening=False)
    clients["acme"] = replace(clients["acme"], agent_sees_supervisor=True)
    supervisors = {
        "sam": Supervisor("sam", "Sam Lee", "h", frozenset({"acme", "globex"})),
        "gus": Supervisor("gus", "Gus Roy", "h", frozenset({"globex"})),
    }
    t = replace(base, clients=clients, supervisors=supervisors)
    clock, worker, recorder = ManualClock(MON_9), Worker(), Recorder()
    live = MemoryLiveState()
    dispatcher = Dispatcher(tenant=t, live=live, clock=clock, workers=worker, recorder=recorder)
    supervision = Supervision(
        tenant=t, dispatcher=dispatcher, live=live, workers=worker, recorder=recorder, clock=clock
    )
    yield Floor(dispatcher, clock, worker, recorder, {}), supervision
    await supervision.stop()
    await dispatcher.stop()


async def test_joining_changing_mode_and_leaving_are_on_the_timeline_and_the_agent_is_told(floor: Any) -> None:
    f, supervision = floor
    alice = await f.sign_in("alice")
    await f.queue("c1")
    await f.pick_up("alice", "c1")
    board = Board()
    await supervision.connected("sam", board)
    assert [m["type"] for m in board.messages] == ["hello", "board"]
    assert board.of("board")[0]["calls"][0]["call_id"] == "c1"

    await supervision.handle("sam", {"type": "join", "call_id": "c1", "sdp": SDP, "mode": "listen"})
    agent_rtc = f.worker.requests[1][2]["rtc_id"]
    rtc_open, supervise = f.worker.requests[-2:]
    assert rtc_open[1] == "rtc_open"
    assert rtc_open[2]["leg"] == 7
    sup_rtc = rtc_open[2]["rtc_id"]
    assert supervise == (0, "supervise", {"rtc_id": sup_rtc, "agent_rtc_id": agent_rtc, "mode": "listen"})
    assert board.of("joined")[-1]["mode"] == "listen"
    assert alice.last("supervision") == {
        "v": 1,
        "type": "supervision",
        "call_id": "c1",
        "supervisor": "Sam Lee",
        "mode": "listen",
    }

    await supervision.handle("sam", {"type": "mode", "call_id": "c1", "mode": "barge"})
    assert f.worker.requests[-1][2]["mode"] == "barge"
    await supervision.handle("sam", {"type": "leave", "call_id": "c1"})
    assert f.worker.requests[-1] == (0, "rtc_close", {"rtc_id": sup_rtc})
    assert alice.last("supervision")["mode"] is None
    kinds = [(e.kind, e.data.get("supervisor"), e.data.get("mode")) for e in f.recorder.events["c1"]]
    assert [k for k in kinds if k[0].startswith("supervisor")] == [
        ("supervisor_joined", "sam", "listen"),
        ("supervisor_mode", "sam", "barge"),
        ("supervisor_left", "sam", None),
    ]


async def test_out_of_scope_and_forbidden_clients_are_refused_before_any_media(floor: Any) -> None:
    f, supervision = floor
    await f.sign_in("alice")
    await f.queue("c1")  # acme
    await f.pick_up("alice", "c1")
    await f.sign_in("bob")
    await f.queue("g1", client="globex")
    await f.pick_up("bob", "g1")
    requests = len(f.worker.requests)
    with pytest.raises(SupervisionRefused) as outside:
        await supervision.handle("gus", {"type": "join", "call_id": "c1", "sdp": SDP, "mode": "listen"})
    assert (outside.value.code, outside.value.status) == ("forbidden", 403)
    with pytest.raises(SupervisionRefused) as forbidden:
        await supervision.handle("sam", {"type": "join", "call_id": "g1", "sdp": SDP, "mode": "listen"})
    assert (forbidden.value.code, str(forbidden.value)) == (
        "listening_forbidden",
        "Globex does not allow live listening.",
    )
    with pytest.raises(SupervisionRefused) as unknown:
        await supervision.handle("sam", {"type": "join", "call_id": "nope", "sdp": SDP, "mode": "listen"})
    assert (unknown.value.code, unknown.value.status) == ("no_such_call", 404)
    with pytest.raises(SupervisionRefused) as bad_mode:
        await supervision.handle("sam", {"type": "join", "call_id": "c1", "sdp": SDP, "mode": "shout"})
    assert bad_mode.value.code == "bad_message"
    assert len(f.worker.requests) == requests, "no media leg was asked for"
    assert [c["call_id"] for c in supervision.calls("gus")] == ["g1"]


async def test_the_wallboard_shows_only_the_supervisor_s_clients(floor: Any) -> None:
    f, supervision = floor
    await f.queue("c1")
    await f.queue("g1", client="globex")
    board = await supervision.board("gus")
    assert [(q["id"], q["waiting"]) for q in board["queues"]] == [("globex", 1)]
    assert {a["login"] for a in board["agents"]} == {"alice", "bob", "carol"}
    assert board["queues"][0]["longest_waiting_since"] == "2026-11-23T09:00:00Z"
    sam = await supervision.board("sam")
    assert [(q["id"], q["waiting"]) for q in sam["queues"]] == [("acme", 1), ("globex", 1)]
