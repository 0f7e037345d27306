"""The agent state log on each backend: spans in order, checkpoints, crash recovery, the windowed read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialplan.reports import StateSpan
from store.agent_states import STALE_AFTER, AgentStateLog, state_spans
from store.models import AgentStateSpanRow

T = datetime(2026, 11, 23, 10, tzinfo=UTC)
Row = tuple[str, str, str | None, str, datetime, datetime | None, datetime]


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


async def rows(engine: AsyncEngine) -> list[Row]:
    """(agent, state, reason, node, started_at, ended_at, seen_at) in the order written."""
    span = AgentStateSpanRow
    query = select(span.agent, span.state, span.reason, span.node, span.started_at, span.ended_at, span.seen_at)
    async with engine.connect() as connection:
        found = (await connection.execute(query.order_by(span.id))).all()
    return [(r.agent, r.state, r.reason, r.node, r.started_at, r.ended_at, r.seen_at) for r in found]


@pytest.fixture
async def states(engine: AsyncEngine) -> AsyncIterator[AgentStateLog]:
    async with AgentStateLog(engine, "node-a") as log:
        yield log


async def test_each_change_ends_the_open_span_and_opens_the_next(engine: AsyncEngine, states: AgentStateLog) -> None:
    states.changed("alice", "paused", "signed in", at(0))
    states.changed("alice", "available", None, at(10))
    states.changed("bob", "available", None, at(12))
    states.changed("alice", "ringing", None, at(20))
    states.changed("alice", "on_call", None, at(25))
    states.changed("alice", "on_call", None, at(26))  # the same state again: the span goes on
    states.changed("alice", "wrap_up", None, at(85))
    states.changed("alice", "paused", "disconnected", at(95))  # the page went: the span ends, none opens
    await states.flush()
    assert await rows(engine) == [
        ("alice", "paused", "signed in", "node-a", at(0), at(10), at(0)),
        ("alice", "available", None, "node-a", at(10), at(20), at(10)),
        ("bob", "available", None, "node-a", at(12), None, at(12)),
        ("alice", "ringing", None, "node-a", at(20), at(25), at(20)),
        ("alice", "on_call", None, "node-a", at(25), at(85), at(26)),
        ("alice", "wrap_up", None, "node-a", at(85), at(95), at(85)),
    ]
    assert states.written == 8


async def test_checkpoints_confirm_only_this_nodes_open_spans(engine: AsyncEngine, states: AgentStateLog) -> None:
    async with AgentStateLog(engine, "node-b") as other:
        other.changed("carol", "available", None, at(0))
        await other.flush()
    states.changed("alice", "available", None, at(0))
    states.changed("bob", "available", None, at(0))
    states.changed("bob", "paused", "break", at(5))
    states.checkpoint(at(30))
    states.checkpoint(at(60))
    await states.flush()
    assert [(r[0], r[3], r[5], r[6]) for r in await rows(engine)] == [
        ("carol", "node-b", None, at(0)),
        ("alice", "node-a", None, at(60)),
        ("bob", "node-a", at(5), at(0)),
        ("bob", "node-a", None, at(60)),
    ]


async def test_after_a_crash_the_open_spans_end_at_their_last_checkpoint(engine: AsyncEngine) -> None:
    async with AgentStateLog(engine, "node-a") as crashed:
        crashed.changed("alice", "available", None, at(0))
        crashed.changed("alice", "on_call", None, at(40))
        crashed.checkpoint(at(60))
        # Nothing is written past here, as if the process died at 75 s: its spans stay open.
    async with AgentStateLog(engine, "node-b") as elsewhere:
        elsewhere.changed("bob", "available", None, at(0))
    async with AgentStateLog(engine, "node-a") as restarted:
        assert await restarted.recover() == 1
        assert await restarted.recover() == 0
    assert [(r[0], r[1], r[5]) for r in await rows(engine)] == [
        ("alice", "available", at(40)),
        ("alice", "on_call", at(60)),  # 15 s short at most one checkpoint period: what is known
        ("bob", "available", None),  # another node's: not this node's to close
    ]


async def test_an_agent_moving_to_another_node_never_has_two_open_spans(engine: AsyncEngine) -> None:
    async with AgentStateLog(engine, "node-a") as first:
        first.changed("alice", "available", None, at(0))
        first.checkpoint(at(30))
    async with AgentStateLog(engine, "node-b") as second:
        second.changed("alice", "paused", "signed in", at(50))
        await second.flush()
    assert [(r[1], r[3], r[5]) for r in await rows(engine)] == [
        ("available", "node-a", at(30)),  # last known there
        ("paused", "node-b", None),
    ]


async def test_the_read_clips_to_the_window_and_ends_open_spans_where_known(
    engine: AsyncEngine, states: AgentStateLog
) -> None:
    states.changed("alice", "available", None, at(-600))
    states.changed("alice", "on_call", None, at(600))
    states.changed("bob", "available", None, at(0))
    states.checkpoint(at(900))
    await states.flush()
    since, until = at(0), at(3600)
    assert await state_spans(engine, since=since, until=until, logins=["alice"]) == [
        StateSpan("alice", "available", at(0), at(600)),
        StateSpan("alice", "on_call", at(600), at(900)),  # open: until its last checkpoint
    ]
    fresh = at(900) + STALE_AFTER
    assert await states.spans(since, until, ["alice"], now=fresh) == [
        StateSpan("alice", "available", at(0), at(600)),
        StateSpan("alice", "on_call", at(600), fresh),  # still confirmed: until now
    ]
    stale = fresh + timedelta(seconds=1)
    assert (await states.spans(since, until, now=stale))[-1] == StateSpan("bob", "available", at(0), at(900))
    assert [s.agent for s in await states.spans(since, until)] == ["alice", "alice", "bob"]
    assert await states.spans(since, until, []) == []
    assert await states.spans(at(1000), until) == []


async def test_changes_when_not_running_are_dropped_not_raised(engine: AsyncEngine) -> None:
    log = AgentStateLog(engine, "node-a")
    log.changed("alice", "available", None, at(0))
    assert log.dropped == 1
    with pytest.raises(ValueError, match="naive"):
        log.changed("alice", "available", None, datetime(2026, 11, 23, 10))
    async with log:
        log.changed("alice", "available", None, at(1))
    log.changed("alice", "paused", "break", at(2))
    assert (log.written, log.dropped) == (1, 2)
    assert [(r[1], r[5]) for r in await rows(engine)] == [("available", None)]
