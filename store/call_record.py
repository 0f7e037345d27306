"""What a call record holds, as the rest of the system sees it."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dialplan.timeline import TimelineEvent


def this_node() -> str:
    """The name of the control node owning the calls this process opens."""
    return socket.gethostname()


def new_call_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, kw_only=True)
class NewCall:
    """The identifying facts of a call, known when it arrives."""

    sip_call_id: str
    caller: str
    did: str
    source: str  # "ip:port" the INVITE came from
    caller_display: str | None = None
    client_id: str | None = None
    line_id: str | None = None
    worker: int | None = None
    node: str = field(default_factory=this_node)
    id: str = field(default_factory=new_call_id)


@dataclass(frozen=True, kw_only=True)
class CallRecord:
    id: str
    sip_call_id: str
    caller: str
    caller_display: str | None
    did: str
    source: str
    client_id: str | None
    line_id: str | None
    worker: int | None
    node: str
    outcome: str | None
    sip_status: int | None
    ended_by: str | None
    answered_by: str | None
    arrived_at: datetime
    ended_at: datetime | None
    arrived_mono: float
    last_mono: float
    last_alive_at: datetime
    event_count: int
    duration_ms: int | None
    queue_wait_ms: int | None
    ring_ms: int | None
    talk_ms: int | None
    hold_ms: int | None
    wrap_up_ms: int | None = None
    events: tuple[TimelineEvent, ...] = ()

    @property
    def closed(self) -> bool:
        return self.outcome is not None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": self.id,
            "sip_call_id": self.sip_call_id,
            "caller": self.caller,
            "caller_display": self.caller_display,
            "did": self.did,
            "source": self.source,
            "client_id": self.client_id,
            "line_id": self.line_id,
            "worker": self.worker,
            "node": self.node,
            "outcome": self.outcome,
            "sip_status": self.sip_status,
            "ended_by": self.ended_by,
            "answered_by": self.answered_by,
            "arrived_at": iso_utc(self.arrived_at),
            "ended_at": iso_utc(self.ended_at),
            "last_alive_at": iso_utc(self.last_alive_at),
            "arrived_mono": self.arrived_mono,
            "last_mono": self.last_mono,
            "event_count": self.event_count,
        }
        for name in ("duration", "queue_wait", "ring", "talk", "hold", "wrap_up"):
            millis: int | None = getattr(self, f"{name}_ms")
            document[f"{name}_ms"] = millis
            document[f"{name}_s"] = None if millis is None else round(millis / 1000, 3)
        document["events"] = [
            {"kind": str(e.kind), "at": iso_utc(e.at), "mono": e.mono, "data": dict(e.data)} for e in self.events
        ]
        return document


def iso_utc(instant: datetime | None) -> str | None:
    """ISO 8601 in UTC with a 'Z', e.g. 2026-01-31T09:15:02.250000Z."""
    if instant is None:
        return None
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
