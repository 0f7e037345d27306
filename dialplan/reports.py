"""Contact-center figures from call records: offered, answered, abandoned, service level, speed of answer.

Pure: closed calls in, rows out. A call is *offered* once it reached a
queue (refused calls never were); it is *answered*, *abandoned* (the caller
hung up waiting) or *sent to fallback*. Service level is the share of
answered-or-abandoned calls answered within the threshold (20 s by
default); callers who hung up within 5 s are left out of both sides, as in
dialplan.floor_stats. Average speed of answer is the mean queue wait of
answered calls; average handle time is their mean talk plus hold plus
wrap-up.

Occupancy is an agent's busy share of their staffed time: time on a call
or in wrap-up over time available, ringing, on a call or in wrap-up
(paused and signed-out time count on neither side), from their state
spans, rounded to 4 places; None without staffed time. ``staffed_s`` is
that staffed time. Spans are split exactly at the period boundaries
(UTC days or hours). Only the agent grouping has them: an agent's idle
time belongs to no client or queue, so client and queue rows carry None.
An agent staffed in a period without taking a call there still gets a row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dialplan.floor_stats import SERVICE_LEVEL_S, SHORT_ABANDON_S

GROUPS = ("client", "queue", "agent")
PERIODS = ("day", "hour")
COLUMNS = (
    "period",
    "group",
    "offered",
    "answered",
    "abandoned",
    "fallback",
    "service_level",
    "avg_speed_of_answer_s",
    "avg_handle_s",
    "staffed_s",
    "occupancy",
)
# An agent's states that count as staffed, and of those the busy ones.
STAFFED_STATES = frozenset({"available", "ringing", "on_call", "wrap_up"})
BUSY_STATES = frozenset({"on_call", "wrap_up"})


@dataclass(frozen=True)
class ReportCall:
    client_id: str
    queue_id: str | None
    agent: str | None
    arrived_at: datetime
    outcome: str
    wait_s: float
    talk_s: float
    hold_s: float
    wrap_up_s: float = 0.0


@dataclass(frozen=True)
class StateSpan:
    """An agent in one state from `start` to `end`; one agent's spans never overlap."""

    agent: str
    state: str
    start: datetime
    end: datetime
    reason: str | None = None


@dataclass
class Occupancy:
    staffed_s: float = 0.0
    busy_s: float = 0.0

    @property
    def share(self) -> float | None:
        return None if self.staffed_s <= 0 else round(self.busy_s / self.staffed_s, 4)


@dataclass
class _Tally:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    fallback: int = 0
    in_time: int = 0
    wait_s: float = 0.0
    handle_s: float = 0.0

    def add(self, call: ReportCall, threshold_s: float) -> None:
        self.offered += 1
        if call.outcome == "answered":
            self.answered += 1
            self.wait_s += call.wait_s
            self.handle_s += call.talk_s + call.hold_s + call.wrap_up_s
            self.in_time += call.wait_s <= threshold_s
        elif call.outcome == "abandoned":
            if call.wait_s < SHORT_ABANDON_S:
                self.short_abandoned += 1
            else:
                self.abandoned += 1
        elif call.outcome == "fallback":
            self.fallback += 1

    def row(self, period: str, group: str) -> dict[str, object]:
        handled = self.answered + self.abandoned
        return {
            "period": period,
            "group": group,
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned + self.short_abandoned,
            "fallback": self.fallback,
            "service_level": None if handled == 0 else round(self.in_time / handled, 4),
            "avg_speed_of_answer_s": None if self.answered == 0 else round(self.wait_s / self.answered, 1),
            "avg_handle_s": None if self.answered == 0 else round(self.handle_s / self.answered, 1),
        }


def report(
    calls: Iterable[ReportCall],
    *,
    group: str,
    period: str,
    threshold_s: float = SERVICE_LEVEL_S,
    spans: Iterable[StateSpan] = (),
) -> list[dict[str, object]]:
    """One row per (period, group), in order; calls never offered (refused, still open) are left out.

    `spans` (agents' states) give the agent grouping its staffed time and occupancy; other groupings ignore them.
    """
    if group not in GROUPS or period not in PERIODS:
        raise ValueError(f"group is one of {GROUPS}, period one of {PERIODS}")
    tallies: dict[tuple[str, str], _Tally] = {}
    for call in calls:
        if call.outcome not in ("answered", "abandoned", "fallback"):
            continue
        key = {"client": call.client_id, "queue": call.queue_id, "agent": call.agent}[group]
        if key is None:
            continue  # by agent: a call nobody answered belongs to no agent
        tallies.setdefault((_stamp(call.arrived_at, period), key), _Tally()).add(call, threshold_s)
    times = occupancy_by_period(spans, period) if group == "agent" else {}
    for staffed in times:
        tallies.setdefault(staffed, _Tally())
    rows = []
    for (stamp, key), tally in sorted(tallies.items()):
        row = tally.row(stamp, key)
        time = times.get((stamp, key), Occupancy())
        row["staffed_s"] = round(time.staffed_s, 1) if group == "agent" else None
        row["occupancy"] = time.share
        rows.append(row)
    return rows


def occupancy_by_period(spans: Iterable[StateSpan], period: str) -> dict[tuple[str, str], Occupancy]:
    """Staffed and busy time per (period, agent), for periods where the agent was staffed at all.

    Raises ValueError if one agent's spans overlap, or a span ends before it starts.
    """
    if period not in PERIODS:
        raise ValueError(f"period is one of {PERIODS}")
    step = timedelta(days=1) if period == "day" else timedelta(hours=1)
    found: dict[tuple[str, str], Occupancy] = {}
    previous: StateSpan | None = None
    for span in sorted(spans, key=lambda s: (s.agent, s.start, s.end)):
        if span.end < span.start:
            raise ValueError(f"{span.agent}: a {span.state} span ends before it starts")
        if previous is not None and previous.agent == span.agent and span.start < previous.end:
            raise ValueError(f"{span.agent}: state spans overlap at {span.start.isoformat()}")
        previous = span
        if span.state not in STAFFED_STATES:
            continue
        start = span.start.astimezone(UTC)
        end = span.end.astimezone(UTC)
        while start < end:
            boundary = min(end, _period_start(start, period) + step)
            time = found.setdefault((_stamp(start, period), span.agent), Occupancy())
            seconds = (boundary - start).total_seconds()
            time.staffed_s += seconds
            if span.state in BUSY_STATES:
                time.busy_s += seconds
            start = boundary
    return found


def _period_start(instant: datetime, period: str) -> datetime:
    hour = instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if period == "day" else hour


def _stamp(instant: datetime, period: str) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d" if period == "day" else "%Y-%m-%dT%H:00Z")
