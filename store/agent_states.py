"""Agents' state spans (available, ringing, on_call, wrap_up, paused): occupancy's input.

The dispatcher reports each state change of its router's agents with
`changed`, under its own lock: the call only queues it. One background task
writes the queue in order, a batch per transaction (through a Journal). A
change closes the agent's open span at its instant and opens the next, so
one agent's spans never overlap. Signing out, or losing the page (paused,
"disconnected"), closes the span and opens none: the table holds the time
agents were connected.

`checkpoint`, about every 30 s, confirms this node's open spans (`seen_at`).
After a crash, `recover` closes them at that last confirmation: what they
count is off by at most one checkpoint period.

Given the call records' journal (`journal=records.journal`), the writes go
through it as RecordWrites: while the database is away they are fsynced to
the disk journal with the call records' writes and replayed in the same
order once it is back, or at the next start if the process was killed
meanwhile (store/outage_buffer.py). Without one, the log has a journal of
its own and retries in memory.

Callers stamp changes themselves; nothing here reads a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Collection
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dialplan.reports import StateSpan
from store.agent_state_writes import Checkpoint, StateChange
from store.journal import Journal
from store.models import AgentStateSpanRow
from store.record_ops import RecordWrite
from store.unreachable import needs_database

log = structlog.get_logger(__name__)

# How often the dispatcher confirms its open spans (telephony.dispatcher.STATE_CHECKPOINT_S).
CHECKPOINT_S = 30.0
# An open span confirmed more recently than this is still going on; an older one belongs to a node that died.
STALE_AFTER = timedelta(seconds=3 * CHECKPOINT_S)
OFFLINE_STATES = frozenset({"logged_out", "offline"})
# The router's reason for an agent paused because their page went away.
DISCONNECTED = "disconnected"
RETRY_S = 1.0
MAX_RETRY_S = 30.0

Item = StateChange | Checkpoint


class AgentStateLog:
    def __init__(
        self,
        engine: AsyncEngine,
        node: str,
        *,
        max_batch: int = 256,
        max_queue: int = 10_000,
        journal: Journal | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError(f"max_batch and max_queue must be at least 1, got {max_batch}, {max_queue}")
        self.engine = engine
        self.node = node
        self.max_batch = max_batch
        self.max_queue = max_queue
        # A shared journal (the call records') is started and stopped by its owner. A journal of
        # this log's own has this log's task as its only writer: it batches and orders on its own.
        self._owns_journal = journal is None
        self.journal = Journal(engine, max_batch=1, max_queue=1) if journal is None else journal
        self.written = 0
        self.dropped = 0
        self._pending: deque[Item] = deque()
        # Items at the head of `_pending` being written now.
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._accepting = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("agent state log already started")
        if self._owns_journal:
            await self.journal.start()
        self._accepting = True
        self._task = asyncio.create_task(self._run(), name="agent-state-log")

    async def stop(self) -> None:
        """Write what is queued (one try if the database is away), then stop."""
        self._accepting = False
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._owns_journal:
            await self.journal.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- writes -------------------------------------------------------------------------------

    def changed(self, login: str, state: str, reason: str | None, at: datetime) -> None:
        """The agent is in `state` from `at` on. Never blocks; written shortly after."""
        _check_instant(at)
        offline = state in OFFLINE_STATES or (state == "paused" and reason == DISCONNECTED)
        self._queue(StateChange(login, state, reason, at, offline))

    def checkpoint(self, at: datetime) -> None:
        """This node's open spans are still going on at `at`. Never blocks."""
        _check_instant(at)
        if len(self._pending) > self._in_flight and isinstance(self._pending[-1], Checkpoint):
            self._pending[-1] = Checkpoint(at)  # only the latest confirmation matters
            return
        self._queue(Checkpoint(at))

    async def recover(self) -> int:
        """Close the spans this node left open when it last stopped, at their last checkpoint.

        Call once after start, before the first change: it would close this run's spans too.
        """
        # While the database is away (buffered) the count is not known: 0.
        count: int = await self.journal.write(
            RecordWrite("agent_states_recover", {"node": self.node}, offline=lambda: 0)
        )
        if count:
            log.warning("agent_state_spans_recovered", count=count, node=self.node)
        return count

    async def flush(self) -> None:
        """Wait until every change queued so far is written."""
        if self._pending:
            await self._idle.wait()

    def _queue(self, item: Item) -> None:
        if not self._accepting:
            self.dropped += 1
            log.warning("agent_state_not_logged", why="the log is not running", item=repr(item))
            return
        if len(self._pending) >= self.max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("agent_state_queue_full", dropped=self.dropped, queued=len(self._pending))
            return
        self._pending.append(item)
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        delay = RETRY_S
        while True:
            if not self._pending:
                self._idle.set()
                if not self._accepting:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._pending[n] for n in range(min(self.max_batch, len(self._pending)))]
            self._in_flight = len(batch)
            try:
                await self.journal.write(RecordWrite("agent_states", {"node": self.node, "items": batch}))
            except Exception as error:
                self._in_flight = 0
                if not self._accepting:
                    # Stopping with the database away: recover() closes the open spans at next start.
                    self.dropped += len(self._pending)
                    log.error("agent_states_lost", count=len(self._pending), error=repr(error))
                    self._pending.clear()
                    continue
                log.warning("agent_states_write_failed", queued=len(self._pending), retry_in_s=delay, error=repr(error))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            for _ in batch:
                self._pending.popleft()
            self._in_flight = 0
            self.written += len(batch)
            delay = RETRY_S

    # --- reads --------------------------------------------------------------------------------

    async def spans(
        self,
        since: datetime,
        until: datetime,
        logins: Collection[str] | None = None,
        *,
        now: datetime | None = None,
    ) -> list[StateSpan]:
        return await state_spans(self.engine, since=since, until=until, logins=logins, now=now)


async def state_spans(
    engine: AsyncEngine,
    *,
    since: datetime,
    until: datetime,
    logins: Collection[str] | None = None,
    now: datetime | None = None,
) -> list[StateSpan]:
    """Spans that overlap [since, until), clipped to it, by agent then start; `logins` None: every agent.

    An open span lasts until `now` while its node keeps confirming it, otherwise (or without `now`)
    until it was last confirmed. A span starts no earlier than the agent's previous one ended: two
    nodes' clocks may differ a little, and overlapping time would count twice.
    """
    _check_instant(since)
    _check_instant(until)
    row = AgentStateSpanRow
    query = select(row.agent, row.state, row.reason, row.started_at, row.ended_at, row.seen_at).where(
        row.started_at < until, or_(row.ended_at.is_(None), row.ended_at > since)
    )
    if logins is not None:
        if isinstance(logins, str):
            raise TypeError(f"expected a collection of logins, got the string {logins!r}")
        if not logins:
            return []
        query = query.where(row.agent.in_(sorted(logins)))
    with needs_database("agent state spans"):
        async with engine.connect() as connection:
            found = (await connection.execute(query.order_by(row.agent, row.started_at, row.id))).all()
    spans: list[StateSpan] = []
    previous: tuple[str, datetime] | None = None
    for agent, state, reason, started_at, ended_at, seen_at in found:
        end = ended_at
        if end is None:
            end = now if now is not None and now - seen_at <= STALE_AFTER else seen_at
        start = max(started_at, since)
        if previous is not None and previous[0] == agent:
            start = max(start, previous[1])
        end = min(end, until)
        if end <= start:
            continue
        spans.append(StateSpan(agent, state, start, end, reason))
        previous = (agent, end)
    return spans


def _check_instant(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: give a timezone-aware instant")
    return instant
