"""The dispatcher's agents, as the state log keeps them: one span per router state, checkpoints from the ticker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialplan.clock import ManualClock
from dialplan.schedule import WeeklyCalendar, WeeklySpan
from dialplan.tenant import Agent, Client, Greeting, ServedClient, Shift, Tenant
from store.agent_states import CHECKPOINT_S, AgentStateLog
from store.db import create_engine, migrate
from store.live_memory import MemoryLiveState
from store.models import AgentStateSpanRow
from telephony.dispatcher import STATE_CHECKPOINT_S, Dispatcher, QueuedCall

T = datetime(2026, 11, 23, 9, tzinfo=UTC)
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
WRAP_UP_S = 30


class Link:
    def send(self, message: dict[str, Any]) -> None:
        pass

    async def close(self, reason: str) -> None:
        pass


class Worker:
    async def request(self, index: int, kind: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        return {"sdp": "v=0 answer"} if kind in ("rtc_open", "rtc_update") else {}


class Recorder:
    def record(self, call_id: str, events: Any) -> None:
        pass

    def end_hint(self, call_id: str, by: str) -> None:
        pass


def tenant() -> Tenant:
    utc = ZoneInfo("UTC")
    clients = {"acme": Client("acme", "Acme", utc, Greeting(text="hi"), wrap_up_s=WRAP_UP_S)}
    always = WeeklyCalendar(utc, weekly=tuple(WeeklySpan(d, time(0), (d + 1) % 7, time(0)) for d in range(7)))
    agents = {"alice": Agent("alice", "Alice", "h", (ServedClient("acme"),))}
    return Tenant("t", "T", clients, (), agents, (Shift("alice", always),))


@dataclass
class Desk:
    dispatcher: Dispatcher
    clock: ManualClock
    live: MemoryLiveState
    states: AgentStateLog
    engine: AsyncEngine

    async def spans(self) -> list[tuple[str, str | None, float, float | None, float]]:
        """(state, reason, start, end, seen) in seconds after T, in the order written."""
        await self.states.flush()
        span = AgentStateSpanRow
        query = select(span.state, span.reason, span.started_at, span.ended_at, span.seen_at).order_by(span.id)
        async with self.engine.connect() as connection:
            found = (await connection.execute(query)).all()
        return [
            (state, reason, _s(start), None if end is None else _s(end), _s(seen))
            for state, reason, start, end, seen in found
        ]


def _s(instant: datetime) -> float:
    return (instant - T).total_seconds()


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    engine = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    await migrate(engine)
    clock, live = ManualClock(T), MemoryLiveState()
    async with AgentStateLog(engine, "node-a") as states:
        dispatcher = Dispatcher(
            tenant=tenant(), live=live, clock=clock, workers=Worker(), recorder=Recorder(), states=states
        )
        yield Desk(dispatcher, clock, live, states, engine)
        await dispatcher.stop()
    await engine.dispose()


async def test_a_call_from_available_back_to_available_leaves_one_span_per_state(desk: Desk) -> None:
    dispatcher, clock = desk.dispatcher, desk.clock
    await dispatcher.agent_connected("alice", Link())
    clock.advance(5)
    await dispatcher.handle("alice", {"type": "set_state", "state": "available"})
    clock.advance(10)
    await dispatcher.call_queued(QueuedCall("c1", 0, 7, "acme", "0612345678", clock.now()))
    clock.advance(5)
    await dispatcher.handle("alice", {"type": "rtc_offer", "call_id": "c1", "sdp": SDP})
    await dispatcher.handle("alice", {"type": "answer", "call_id": "c1"})
    clock.advance(60)
    await dispatcher.call_ended("c1", "caller")
    clock.advance(WRAP_UP_S)
    await dispatcher.dispatch()
    clock.advance(20)
    await dispatcher.stop()  # its last checkpoint: the span still open was seen until now
    assert await desk.spans() == [
        ("paused", "signed in", 0, 5, 0),
        ("available", None, 5, 15, 5),
        ("ringing", None, 15, 20, 15),
        ("on_call", None, 20, 80, 20),
        ("wrap_up", None, 80, 110, 80),
        ("available", None, 110, None, 130),
    ]
    await dispatcher.agent_disconnected("alice", Link())  # not her link: nothing changes
    clock.advance(1)
    link = dispatcher.agent_link("alice")
    assert link is not None
    await dispatcher.agent_disconnected("alice", link)
    assert (await desk.spans())[-1] == ("available", None, 110, 131, 130), "the page went: the span ends"


async def test_an_agent_held_by_another_node_goes_back_to_available_in_the_log_too(desk: Desk) -> None:
    dispatcher, clock = desk.dispatcher, desk.clock
    await dispatcher.agent_connected("alice", Link())
    await dispatcher.handle("alice", {"type": "set_state", "state": "available"})
    assert await desk.live.reserve_agent("alice", "elsewhere", at=clock.now())
    clock.advance(10)
    await dispatcher.call_queued(QueuedCall("c1", 0, 7, "acme", "0612345678", clock.now()))
    assert [(state, start, end) for state, _, start, end, _ in await desk.spans()] == [
        ("paused", 0, 0),
        ("available", 0, 10),
        ("ringing", 10, 10),
        ("available", 10, None),
    ]


async def test_the_ticker_confirms_the_open_spans(desk: Desk) -> None:
    assert STATE_CHECKPOINT_S == CHECKPOINT_S, "readers take spans unconfirmed for long to be a dead node's"
    dispatcher, clock = desk.dispatcher, desk.clock
    await dispatcher.agent_connected("alice", Link())
    await dispatcher.handle("alice", {"type": "set_state", "state": "available"})
    dispatcher.start()
    clock.advance(45)
    for _ in range(100):
        await dispatcher.dispatch()  # wakes the ticker at once
        await asyncio.sleep(0.02)
        if (await desk.spans())[-1][4] == 45:
            break
    assert (await desk.spans())[-1] == ("available", None, 0, None, 45)
