"""Contact-center figures from call records: offered, answered, abandoned, service level, speed of answer.

Pure: closed calls in, rows out. A call is *offered* once it reached a
queue (refused calls never were); it is *answered*, *abandoned* (the caller
hung up waiting) or *sent to fallback*. Service level is the share of
answered-or-abandoned calls answered within the threshold (20 s by
default); callers who hung up within 5 s are left out of both sides, as in
dialplan.floor_stats. Average speed of answer is the mean queue wait of
answered calls; average handle time is their mean talk plus hold plus
wrap-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

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
)


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
    calls: Iterable[ReportCall], *, group: str, period: str, threshold_s: float = SERVICE_LEVEL_S
) -> list[dict[str, object]]:
    """One row per (period, group), in order; calls never offered (refused, still open) are left out."""
    if group not in GROUPS or period not in PERIODS:
        raise ValueError(f"group is one of {GROUPS}, period one of {PERIODS}")
    tallies: dict[tuple[str, str], _Tally] = {}
    for call in calls:
        if call.outcome not in ("answered", "abandoned", "fallback"):
            continue
        key = {"client": call.client_id, "queue": call.queue_id, "agent": call.agent}[group]
        if key is None:
            continue  # by agent: a call nobody answered belongs to no agent
        stamp = call.arrived_at.strftime("%Y-%m-%d" if period == "day" else "%Y-%m-%dT%H:00Z")
        tallies.setdefault((stamp, key), _Tally()).add(call, threshold_s)
    return [tally.row(stamp, key) for (stamp, key), tally in sorted(tallies.items())]
