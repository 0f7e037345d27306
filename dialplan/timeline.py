"""A call's event timeline, and the authoritative figures derived from it.

Every duration comes from the events' monotonic stamps (seconds on the
host's CLOCK_MONOTONIC, shared by all processes of one host), never from
wall-clock differences, so a clock step during a call changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    ARRIVED = "arrived"
    REJECTED = "rejected"
    ANSWERED_BY_BRIDGE = "answered_by_bridge"
    QUEUED = "queued"
    GREETING_STARTED = "greeting_started"
    MUSIC_STARTED = "music_started"
    OFFERED = "offered"
    RINGING = "ringing"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    ANSWERED = "answered"
    HOLD = "hold"
    UNHOLD = "unhold"
    AGENT_LOST = "agent_lost"
    # A queue announcement decided for the caller (position and wait, or the periodic message).
    ANNOUNCED = "announced"
    # The caller left their queue for its fallback: another queue, or (final) a message and hang-up.
    FALLBACK = "fallback"
    # A supervisor joined the call (listen, whisper or barge), changed mode, or left it.
    SUPERVISOR_JOINED = "supervisor_joined"
    SUPERVISOR_MODE = "supervisor_mode"
    SUPERVISOR_LEFT = "supervisor_left"
    # Recording began: by the client's policy at the answer, or on demand by an agent or supervisor.
    RECORDING_STARTED = "recording_started"
    # After the call: the agent who took it finished their wrap-up (the only event a closed call takes).
    WRAP_UP_ENDED = "wrap_up_ended"
    # After the call: its recording's voice figures (talk shares, silences) and where the files are.
    VOICE_ANALYSED = "voice_analysed"
    # After the call: its recording was compressed and stored (file, duration, retention).
    RECORDING_STORED = "recording_stored"
    ENDED = "ended"
    INTERRUPTED = "interrupted"


class Outcome(StrEnum):
    """How a call ended. Later capabilities add members (fallback, voicemail...)."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    # Sent to the queue's final fallback (queue full, waited too long, nobody to serve).
    FALLBACK = "fallback"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"


TERMINAL_KINDS = frozenset({EventKind.ENDED, EventKind.INTERRUPTED, EventKind.REJECTED})
# The events a closed call's timeline still takes.
AFTER_CLOSE_KINDS = frozenset({EventKind.WRAP_UP_ENDED, EventKind.VOICE_ANALYSED, EventKind.RECORDING_STORED})


@dataclass(frozen=True)
class TimelineEvent:
    kind: str
    at: datetime
    mono: float
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class AgentShare:
    """The part of a call attributed to one agent."""

    ring_s: float = 0.0
    talk_s: float = 0.0
    hold_s: float = 0.0
    answered: bool = False
    wrap_up_s: float = 0.0


@dataclass(frozen=True)
class CallSummary:
    outcome: Outcome | None
    sip_status: int | None
    ended_by: str | None
    duration_s: float
    queue_wait_s: float
    ring_s: float
    talk_s: float
    hold_s: float
    answered_by: str | None
    agents: Mapping[str, AgentShare]
    # From the call's end to its agent's WRAP_UP_ENDED (0 until then).
    wrap_up_s: float = 0.0

    @property
    def closed(self) -> bool:
        return self.outcome is not None


class _Phase(StrEnum):
    SETUP = "setup"
    QUEUED = "queued"
    TALKING = "talking"
    HELD = "held"
    DONE = "done"


def summarize(events: Iterable[TimelineEvent]) -> CallSummary:
    """Fold a timeline (in order) into outcome and durations.

    Queue wait runs from `queued` until an agent answers or the call ends,
    and includes the ring time of offers made meanwhile. Talk runs from an
    agent's answer to the end (or to the agent's loss), minus hold. A call
    re-queued after an agent is lost accumulates a second queue interval.
    `answered_by` is the agent on the call when it ended; every agent's
    share (ring, talk, hold) is in `agents`.
    """
    ordered = list(events)
    if not ordered or ordered[0].kind != EventKind.ARRIVED:
        raise ValueError("a timeline starts with its arrival")
    start = ordered[0].mono
    phase = _Phase.SETUP
    phase_since = start
    queue_wait = 0.0
    agents: dict[str, AgentShare] = {}
    ringing: dict[str, float] = {}
    # Wall time during which at least one agent was ringing: parallel offers
    # (ring-all) must not count the same second twice.
    ring_total = 0.0
    ring_since: float | None = None
    talking_agent: str | None = None
    outcome: Outcome | None = None
    sip_status: int | None = None
    ended_by: str | None = None
    sent_away = False
    last = start

    def close_phase(now: float) -> None:
        nonlocal queue_wait
        elapsed = max(0.0, now - phase_since)
        if phase is _Phase.QUEUED:
            queue_wait += elapsed
        elif phase is _Phase.TALKING and talking_agent is not None:
            agents[talking_agent].talk_s += elapsed
        elif phase is _Phase.HELD and talking_agent is not None:
            agents[talking_agent].hold_s += elapsed

    def start_ringing(agent: str, now: float) -> None:
        nonlocal ring_since
        agents.setdefault(agent, AgentShare())
        if not ringing:
            ring_since = now
        ringing.setdefault(agent, now)

    def stop_ringing(agent: str, now: float) -> None:
        nonlocal ring_total, ring_since
        began = ringing.pop(agent, None)
        if began is None:
            return
        agents[agent].ring_s += max(0.0, now - began)
        if not ringing and ring_since is not None:
            ring_total += max(0.0, now - ring_since)
            ring_since = None

    def stop_all_ringing(now: float) -> None:
        for other in list(ringing):
            stop_ringing(other, now)

    def enter(new_phase: _Phase, now: float) -> None:
        nonlocal phase, phase_since
        close_phase(now)
        phase, phase_since = new_phase, now

    for event in ordered:
        now = event.mono
        last = max(last, now)
        kind = event.kind
        agent = event.data.get("agent")
        if kind == EventKind.QUEUED:
            enter(_Phase.QUEUED, now)
        elif kind == EventKind.OFFERED and isinstance(agent, str):
            start_ringing(agent, now)
        elif kind in (EventKind.DECLINED, EventKind.NO_ANSWER) and isinstance(agent, str):
            stop_ringing(agent, now)
        elif kind == EventKind.ANSWERED and isinstance(agent, str):
            stop_all_ringing(now)
            agents.setdefault(agent, AgentShare()).answered = True
            enter(_Phase.TALKING, now)
            talking_agent = agent
        elif kind == EventKind.HOLD and phase is _Phase.TALKING:
            enter(_Phase.HELD, now)
        elif kind == EventKind.UNHOLD and phase is _Phase.HELD:
            enter(_Phase.TALKING, now)
        elif kind == EventKind.FALLBACK and event.data.get("final"):
            sent_away = True
        elif kind == EventKind.AGENT_LOST:
            lost = agent if isinstance(agent, str) else talking_agent
            if lost is not None and lost == talking_agent:
                enter(_Phase.QUEUED, now)
                talking_agent = None
            elif lost is not None:
                stop_ringing(lost, now)
        elif kind in TERMINAL_KINDS:
            stop_all_ringing(now)
            # Answered means an agent was on the call when it ended; a caller
            # re-queued after losing their agent and then hanging up abandoned.
            served = phase in (_Phase.TALKING, _Phase.HELD)
            enter(_Phase.DONE, now)
            if kind == EventKind.REJECTED:
                outcome = Outcome.REJECTED
                status = event.data.get("status")
                sip_status = status if isinstance(status, int) else None
            elif kind == EventKind.INTERRUPTED:
                outcome = Outcome.INTERRUPTED
                ended_by = "system"
            else:
                outcome = Outcome.ANSWERED if served else Outcome.FALLBACK if sent_away else Outcome.ABANDONED
                by = event.data.get("by")
                ended_by = by if isinstance(by, str) else None
                status = event.data.get("status")
                sip_status = status if isinstance(status, int) else sip_status
            if not served:
                talking_agent = None
            break

    if phase is not _Phase.DONE:
        close_phase(last)
        if ring_since is not None:
            ring_total += max(0.0, last - ring_since)

    wrap_up = 0.0
    terminal = next((e for e in ordered if e.kind in TERMINAL_KINDS), None)
    if terminal is not None and talking_agent is not None:
        for event in ordered:
            if event.kind == EventKind.WRAP_UP_ENDED and event.data.get("agent") == talking_agent:
                wrap_up = max(0.0, event.mono - terminal.mono)
                agents[talking_agent].wrap_up_s = wrap_up
                break

    return CallSummary(
        outcome=outcome,
        sip_status=sip_status,
        ended_by=ended_by,
        duration_s=max(0.0, last - start),
        queue_wait_s=queue_wait,
        ring_s=ring_total,
        talk_s=sum(share.talk_s for share in agents.values()),
        hold_s=sum(share.hold_s for share in agents.values()),
        answered_by=talking_agent,
        agents=agents,
        wrap_up_s=wrap_up,
    )
