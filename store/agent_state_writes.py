"""The agent state log's writes, each run by the journal inside a batch transaction.

Statements are built once, with bind parameters, as in store.record_writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from store.models import AgentStateSpanRow

_SPAN = AgentStateSpanRow


@dataclass(frozen=True)
class StateChange:
    login: str
    state: str
    reason: str | None
    at: datetime
    # Signed out or disconnected: the open span ends and none opens.
    offline: bool


@dataclass(frozen=True)
class Checkpoint:
    at: datetime


# FOR UPDATE serialises two nodes changing one agent on PostgreSQL; SQLite's
# BEGIN IMMEDIATE already serialises every writer.
_OPEN_OF_AGENT = (
    select(_SPAN.id, _SPAN.node, _SPAN.state, _SPAN.reason, _SPAN.started_at, _SPAN.seen_at)
    .where(_SPAN.agent == bindparam("login"), _SPAN.ended_at.is_(None))
    .order_by(_SPAN.started_at, _SPAN.id)
    .with_for_update()
)
_END = update(_SPAN).where(_SPAN.id == bindparam("span_id")).values(ended_at=bindparam("end"))
_SEEN = update(_SPAN).where(_SPAN.id == bindparam("span_id")).values(seen_at=bindparam("seen"))
_INSERT = insert(_SPAN)
_CHECKPOINT = (
    update(_SPAN)
    .where(_SPAN.node == bindparam("own_node"), _SPAN.ended_at.is_(None), _SPAN.seen_at < bindparam("seen"))
    .values(seen_at=bindparam("seen"))
)
_RECOVER = (
    update(_SPAN).where(_SPAN.node == bindparam("own_node"), _SPAN.ended_at.is_(None)).values(ended_at=_SPAN.seen_at)
)


def apply(connection: Connection, node: str, items: Sequence[StateChange | Checkpoint]) -> None:
    for item in items:
        if isinstance(item, Checkpoint):
            connection.execute(_CHECKPOINT, {"own_node": node, "seen": item.at})
        else:
            _change(connection, node, item)


def recover(connection: Connection, node: str) -> int:
    return connection.execute(_RECOVER, {"own_node": node}).rowcount


def _change(connection: Connection, node: str, change: StateChange) -> None:
    found = connection.execute(_OPEN_OF_AGENT, {"login": change.login}).all()
    if not change.offline and len(found) == 1:
        span = found[0]
        if span.node == node and (span.state, span.reason) == (change.state, change.reason):
            connection.execute(_SEEN, {"span_id": span.id, "seen": max(span.seen_at, change.at)})
            return
    ends = []
    for span in found:
        # Another node's open span was last known at its seen_at: the agent moved, or that node died.
        end = change.at if span.node == node else min(change.at, span.seen_at)
        ends.append({"span_id": span.id, "end": max(end, span.started_at)})
    if ends:
        connection.execute(_END, ends)
    if not change.offline:
        connection.execute(
            _INSERT,
            {
                "agent": change.login,
                "state": change.state,
                "reason": change.reason,
                "node": node,
                "started_at": change.at,
                "ended_at": None,
                "seen_at": change.at,
            },
        )
