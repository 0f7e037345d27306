"""A write made while calls are up, as data: an operation name and its arguments.

The call records' writes (store/record_writes.py), the agents' state spans
(store/agent_state_writes.py) and the recordings' rows (store/recording_writes.py)
all go through the call records' journal, so all of them are buffered to the
disk journal while the database is away, and replayed in the order they were
made. Run against a connection it is the write. Encoded,
its arguments are JSON-safe (instants as ISO 8601 strings) for the disk
journal, and decoded they are exactly what they were: floats and instants
round-trip to the same values, so a replayed timeline is the one that would
have been written. Replayed, a write checks first whether it already
committed (see record_writes' replays).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from store import agent_state_writes, record_writes, recording_writes
from store.agent_state_writes import Checkpoint, StateChange

Args = Mapping[str, Any]
# The instants among open_call's row values.
_CALL_INSTANTS = ("arrived_at", "last_alive_at")


def _nothing() -> None:
    return None


@dataclass(frozen=True, eq=False)
class RecordWrite:
    op: str
    args: Args
    # What the caller is given when the write is buffered instead (the database's answer is not there).
    offline: Callable[[], Any] = _nothing

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown record write {self.op!r}")

    def __call__(self, connection: Connection) -> Any:
        return _OPS[self.op].run(connection, **self.args)

    def replay(self, connection: Connection) -> Any:
        return _OPS[self.op].replay(connection, **self.args)

    def encode(self) -> dict[str, Any]:
        return _OPS[self.op].encode(self.args)

    @classmethod
    def decode(cls, op: str, data: Args) -> RecordWrite:
        if op not in _OPS:
            raise ValueError(f"unknown record write {op!r}")
        return cls(op, _OPS[op].decode(data))


@dataclass(frozen=True)
class _Op:
    run: Callable[..., Any]
    replay: Callable[..., Any]
    encode: Callable[[Args], dict[str, Any]]
    decode: Callable[[Args], dict[str, Any]]


def _instant(value: str) -> datetime:
    instant = datetime.fromisoformat(value)
    if instant.utcoffset() is None:
        raise ValueError(f"journaled instant {value!r} has no offset")
    return instant


def _encode_events(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "at": row["at"].isoformat()} for row in events]


def _decode_events(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"kind": str(row["kind"]), "at": _instant(row["at"]), "mono": float(row["mono"]), "data": dict(row["data"])}
        for row in events
    ]


def _encode_open(args: Args) -> dict[str, Any]:
    values = dict(args["values"])
    for name in _CALL_INSTANTS:
        values[name] = values[name].isoformat()
    return {"values": values, "events": _encode_events(args["events"])}


def _decode_open(data: Args) -> dict[str, Any]:
    values = dict(data["values"])
    for name in _CALL_INSTANTS:
        values[name] = _instant(values[name])
    return {"values": values, "events": _decode_events(data["events"])}


def _encode_call_events(args: Args) -> dict[str, Any]:
    return {"call_id": args["call_id"], "events": _encode_events(args["events"])}


def _decode_call_events(data: Args) -> dict[str, Any]:
    return {"call_id": str(data["call_id"]), "events": _decode_events(data["events"])}


def _encode_heartbeat(args: Args) -> dict[str, Any]:
    return {"call_ids": list(args["call_ids"]), "at": args["at"].isoformat(), "mono": args["mono"]}


def _decode_heartbeat(data: Args) -> dict[str, Any]:
    return {"call_ids": [str(i) for i in data["call_ids"]], "at": _instant(data["at"]), "mono": float(data["mono"])}


def _same(args: Args) -> dict[str, Any]:
    # close_interrupted's arguments are JSON already (ids, a worker number, a node name, a reason).
    return dict(args)


def _encode_states(args: Args) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for item in args["items"]:
        if isinstance(item, Checkpoint):
            items.append({"checkpoint": item.at.isoformat()})
        else:
            items.append(
                {
                    "login": item.login,
                    "state": item.state,
                    "reason": item.reason,
                    "at": item.at.isoformat(),
                    "offline": item.offline,
                }
            )
    return {"node": args["node"], "items": items}


def _decode_states(data: Args) -> dict[str, Any]:
    items: list[StateChange | Checkpoint] = []
    for item in data["items"]:
        if "checkpoint" in item:
            items.append(Checkpoint(_instant(item["checkpoint"])))
        else:
            reason = item["reason"]
            items.append(
                StateChange(
                    str(item["login"]),
                    str(item["state"]),
                    None if reason is None else str(reason),
                    _instant(item["at"]),
                    bool(item["offline"]),
                )
            )
    return {"node": str(data["node"]), "items": items}


def _encode_recording(args: Args) -> dict[str, Any]:
    values = dict(args["values"])
    for name in recording_writes.INSTANTS:
        if values[name] is not None:
            values[name] = values[name].isoformat()
    return {"values": values}


def _decode_recording(data: Args) -> dict[str, Any]:
    values = dict(data["values"])
    if set(values) != set(recording_writes.COLUMNS):
        raise ValueError(f"recording columns {sorted(values)}")
    for name in recording_writes.INSTANTS:
        if values[name] is not None:
            values[name] = _instant(values[name])
    return {"values": values}


_OPS: dict[str, _Op] = {
    "open_call": _Op(record_writes.open_call, record_writes.replay_open_call, _encode_open, _decode_open),
    "append": _Op(record_writes.append, record_writes.replay_append, _encode_call_events, _decode_call_events),
    "append_after_close": _Op(
        record_writes.append_after_close,
        record_writes.replay_append_after_close,
        _encode_call_events,
        _decode_call_events,
    ),
    # Closing a closed call writes nothing: a replayed close needs no check of its own.
    "close": _Op(record_writes.close, record_writes.close, _encode_call_events, _decode_call_events),
    "heartbeat": _Op(record_writes.heartbeat, record_writes.heartbeat, _encode_heartbeat, _decode_heartbeat),
    "close_interrupted": _Op(record_writes.close_interrupted, record_writes.close_interrupted, _same, _same),
    # The agents' state spans: a batch of changes and checkpoints of one node.
    "agent_states": _Op(agent_state_writes.apply, agent_state_writes.replay_apply, _encode_states, _decode_states),
    # Closing this node's spans left open by its last run ends nothing twice.
    "agent_states_recover": _Op(agent_state_writes.recover, agent_state_writes.recover, _same, _same),
    # A finished call's recording: its row, without which its file could be neither found nor purged.
    "recording": _Op(recording_writes.add, recording_writes.replay_add, _encode_recording, _decode_recording),
}
