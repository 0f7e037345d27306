"""The agent state log's writes, each run by the journal inside a batch transaction.

Statements are built once, with bind parameters, as in store.record_writes.
While the database is away they are buffered to the disk journal with the
call records' writes (store/record_ops.py) and replayed in order once it is
back; `replay_apply` skips the changes already stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, or_, select, update

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
# Something this node stored about the agent after `at`: a change stamped `at` was stored before it.
_LATER_OF_AGENT = (
    select(_SPAN.id)
    .where(
        _SPAN.agent == bindparam("login"),
        _SPAN.node == bindparam("own_node"),
        or_(_SPAN.started_at > bindparam("at"), _SPAN.ended_at > bindparam("at"), _SPAN.seen_at > bindparam("at")),
    )
    .limit(1)
)
# The change itself: the span it opened, or the open span of the same state it confirmed.
_SAME_AT = (
    select(_SPAN.id)
    .where(
        _SPAN.agent == bindparam("login"),
        _SPAN.node == bindparam("own_node"),
        _SPAN.state == bindparam("state"),
        or_(_SPAN.started_at == bindparam("at"), _SPAN.seen_at == bindparam("at")),
    )
    .limit(1)
)
_OPEN_HERE = (
    select(_SPAN.id)
    .where(_SPAN.agent == bindparam("login"), _SPAN.node == bindparam("own_node"), _SPAN.ended_at.is_(None))
    .limit(1)
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


# --- replays -----------------------------------------------------------------------------------
# A batch buffered because the database went away may have committed all the
# same (the connection broke after COMMIT). A checkpoint is safe to run again
# (it only moves seen_at forward); a change is skipped if it is stored already:
# its span is there, or this node stored something about the agent later than
# it (the dispatcher stamps changes and checkpoints in the order it queues them).


def replay_apply(connection: Connection, node: str, items: Sequence[StateChange | Checkpoint]) -> None:
    for item in items:
        if isinstance(item, Checkpoint):
            connection.execute(_CHECKPOINT, {"own_node": node, "seen": item.at})
        elif not _stored(connection, node, item):
            _change(connection, node, item)


def _stored(connection: Connection, node: str, change: StateChange) -> bool:
    about = {"login": change.login, "own_node": node, "at": change.at}
    if connection.execute(_LATER_OF_AGENT, about).first() is not None:
        return True
    if change.offline:
        # Stored, it left none of this node's spans of the agent open.
        return connection.execute(_OPEN_HERE, about).first() is None
    return connection.execute(_SAME_AT, {**about, "state": change.state}).first() is not None


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
