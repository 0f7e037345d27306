"""Tables of the call record: one row per call, and its ordered event timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Double, ForeignKey, Index, Integer, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.column_types import UTCDateTime, big_serial, json_document

# Deterministic constraint names keep migrations and the models comparable on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: json_document()}


class CallRow(Base):
    __tablename__ = "calls"
    __table_args__ = (
        # Serves both "calls of these clients" and their newest-first listing.
        Index(None, "client_id", "arrived_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sip_call_id: Mapped[str] = mapped_column(String, index=True)
    caller: Mapped[str] = mapped_column(String)
    caller_display: Mapped[str | None] = mapped_column(String)
    did: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(String)
    client_id: Mapped[str | None] = mapped_column(String)
    line_id: Mapped[str | None] = mapped_column(String)
    worker: Mapped[int | None] = mapped_column(Integer)
    node: Mapped[str] = mapped_column(String)
    outcome: Mapped[str | None] = mapped_column(String, index=True)
    sip_status: Mapped[int | None] = mapped_column(Integer)
    ended_by: Mapped[str | None] = mapped_column(String)
    answered_by: Mapped[str | None] = mapped_column(String)
    arrived_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column()
    arrived_mono: Mapped[float] = mapped_column(Double)
    last_mono: Mapped[float] = mapped_column(Double)
    last_alive_at: Mapped[datetime] = mapped_column()
    # Events in the timeline, i.e. the next seq. Read in the same statement that locks
    # the row, it is current; a max(seq) there would see PostgreSQL's snapshot from
    # before the lock wait, missing the events of the writer it waited for.
    event_count: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    queue_wait_ms: Mapped[int | None] = mapped_column(BigInteger)
    ring_ms: Mapped[int | None] = mapped_column(BigInteger)
    talk_ms: Mapped[int | None] = mapped_column(BigInteger)
    hold_ms: Mapped[int | None] = mapped_column(BigInteger)
    # Set when the agent's wrap-up ends, after the call closed.
    wrap_up_ms: Mapped[int | None] = mapped_column(BigInteger)


class CallEventRow(Base):
    __tablename__ = "call_events"
    # The unique (call_id, seq) index also serves every lookup by call_id.
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: Mapped[int] = mapped_column(big_serial(), primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(32), ForeignKey("calls.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String)
    at: Mapped[datetime] = mapped_column()
    mono: Mapped[float] = mapped_column(Double)
    data: Mapped[dict[str, Any]] = mapped_column()


class OverflowSettingRow(Base):
    """A line's overflow as its client admin left it: the switch, the schedule, the takeovers."""

    __tablename__ = "overflow_settings"

    line_id: Mapped[str] = mapped_column(String, primary_key=True)
    switched_on: Mapped[bool] = mapped_column(Boolean)
    # {"weekly": [[start_day, "HH:MM", end_day, "HH:MM"]], "holidays": ["YYYY-MM-DD"],
    #  "adhoc": [["start ISO", "end ISO"]], "end_policy": "serve" | "return"}
    settings: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    updated_by: Mapped[str] = mapped_column(String)


class OverflowAuditRow(Base):
    """Who changed a line's overflow, when, and from what to what."""

    __tablename__ = "overflow_audit"
    __table_args__ = (Index(None, "client_id", "at"),)

    id: Mapped[int] = mapped_column(big_serial(), primary_key=True, autoincrement=True)
    line_id: Mapped[str] = mapped_column(String)
    client_id: Mapped[str] = mapped_column(String)
    actor: Mapped[str] = mapped_column(String)
    at: Mapped[datetime] = mapped_column()
    # switch | schedule | takeover | end_policy
    change: Mapped[str] = mapped_column(String)
    old: Mapped[dict[str, Any]] = mapped_column()
    new: Mapped[dict[str, Any]] = mapped_column()


class CallScoreRow(Base):
    """A supervisor's score of a call (1 to 5, with a comment): it feeds the agents' quality share."""

    __tablename__ = "call_scores"

    id: Mapped[int] = mapped_column(big_serial(), primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(32), ForeignKey("calls.id"), index=True)
    supervisor: Mapped[str] = mapped_column(String)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(String)
    at: Mapped[datetime] = mapped_column()


class AgentStateSpanRow(Base):
    """One stretch of an agent in one state (available, on_call, ...): occupancy's input.

    ``ended_at`` is NULL while the span is open; ``seen_at`` is the last time its node
    confirmed it still open, where a crash recovery closes it.
    """

    __tablename__ = "agent_state_spans"
    __table_args__ = (
        Index(None, "agent", "started_at"),
        # Spans still going on in a report's window, and a node's open spans (checkpoints, recovery).
        Index(None, "ended_at", "node"),
    )

    id: Mapped[int] = mapped_column(big_serial(), primary_key=True, autoincrement=True)
    agent: Mapped[str] = mapped_column(String)
    state: Mapped[str] = mapped_column(String)
    reason: Mapped[str | None] = mapped_column(String)
    node: Mapped[str] = mapped_column(String)
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    seen_at: Mapped[datetime] = mapped_column()


class RecordingRow(Base):
    """A call's recording: one Ogg Opus file (caller left, agent right), until its retention ends."""

    __tablename__ = "recordings"
    __table_args__ = (Index(None, "expires_at", "purged_at"),)

    call_id: Mapped[str] = mapped_column(String(32), ForeignKey("calls.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String, index=True)
    # Relative to the recordings directory.
    file: Mapped[str] = mapped_column(String)
    media_type: Mapped[str] = mapped_column(String)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    # always (the client's policy) or the login of the agent or supervisor who started it.
    started_by: Mapped[str] = mapped_column(String)
    stored_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    purged_at: Mapped[datetime | None] = mapped_column()


class RecordingAccessRow(Base):
    """Every attempt to play a recording, granted or refused: written before the answer goes out."""

    __tablename__ = "recording_access"
    __table_args__ = (Index(None, "call_id", "at"),)

    id: Mapped[int] = mapped_column(big_serial(), primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str | None] = mapped_column(String)
    actor: Mapped[str] = mapped_column(String)
    role: Mapped[str] = mapped_column(String)
    at: Mapped[datetime] = mapped_column()
    granted: Mapped[bool] = mapped_column(Boolean)
    # Why it was refused, or which bytes were sent.
    detail: Mapped[str] = mapped_column(String)


metadata = Base.metadata
