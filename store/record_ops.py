"""A call-record write as data: an operation name and its arguments.

Run against a connection it is the write (store/record_writes.py). Encoded,
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

from store import record_writes

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
}
