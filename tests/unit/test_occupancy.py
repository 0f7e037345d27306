"""Occupancy from agents' state spans: staffed and busy time per period, split exactly at its boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dialplan.reports import COLUMNS, ReportCall, StateSpan, occupancy_by_period, report

T = datetime(2026, 11, 23, 10, tzinfo=UTC)
H10, H11 = "2026-11-23T10:00Z", "2026-11-23T11:00Z"
DAY, NEXT_DAY = "2026-11-23", "2026-11-24"


def at(minutes: float) -> datetime:
    return T + timedelta(minutes=minutes)


def spans(*parts: tuple[str, float, float], agent: str = "alice") -> list[StateSpan]:
    """(state, from minute, to minute) after 10:00 UTC."""
    return [StateSpan(agent, state, at(start), at(end)) for state, start, end in parts]


# Each case: spans, period, and per (period, agent) the expected (staffed_s, occupancy).
CASES = {
    "available only": (spans(("available", 0, 60)), "hour", {(H10, "alice"): (3600.0, 0.0)}),
    "a call across the hour is split at it": (
        spans(("on_call", 30, 90)),
        "hour",
        {(H10, "alice"): (1800.0, 1.0), (H11, "alice"): (1800.0, 1.0)},
    ),
    "the split is exact to the sub-second": (
        [StateSpan("alice", "on_call", at(60) - timedelta(seconds=0.5), at(60) + timedelta(seconds=1.5))],
        "hour",
        {(H10, "alice"): (0.5, 1.0), (H11, "alice"): (1.5, 1.0)},
    ),
    "a wrap-up across midnight is split at it": (
        spans(("available", 810, 840), ("wrap_up", 840, 900)),  # 23:30 to 00:00 to 01:00
        "day",
        {(DAY, "alice"): (1800.0, 0.0), (NEXT_DAY, "alice"): (3600.0, 1.0)},
    ),
    "ringing is staffed but not busy": (
        spans(("available", 0, 20), ("ringing", 20, 30), ("on_call", 30, 50), ("wrap_up", 50, 60)),
        "hour",
        {(H10, "alice"): (3600.0, 0.5)},
    ),
    "paused time counts on neither side": (
        spans(("available", 0, 30), ("paused", 30, 60), ("on_call", 60, 90)),
        "day",
        {(DAY, "alice"): (3600.0, 0.5)},
    ),
    "paused for a whole period: no staffed time there": (
        spans(("paused", 0, 60), ("on_call", 60, 70), ("available", 70, 90)),
        "hour",
        {(H11, "alice"): (1800.0, 0.3333)},
    ),
    "only paused or signed out: nothing": (spans(("paused", 0, 60), ("logged_out", 60, 120)), "day", {}),
    "a zero-length span adds nothing": (spans(("available", 10, 10)), "day", {}),
    "agents are counted apart": (
        spans(("on_call", 0, 15), ("available", 15, 60)) + spans(("on_call", 0, 60), agent="bob"),
        "hour",
        {(H10, "alice"): (3600.0, 0.25), (H10, "bob"): (3600.0, 1.0)},
    ),
    "another agent's span may overlap": (
        spans(("available", 0, 60)) + spans(("available", 30, 90), agent="bob"),
        "day",
        {(DAY, "alice"): (3600.0, 0.0), (DAY, "bob"): (3600.0, 0.0)},
    ),
    "spans given out of order": (
        list(reversed(spans(("on_call", 0, 30), ("available", 30, 60)))),
        "day",
        {(DAY, "alice"): (3600.0, 0.5)},
    ),
}


@pytest.mark.parametrize(("given", "period", "expected"), CASES.values(), ids=CASES.keys())
def test_occupancy_per_period(
    given: list[StateSpan], period: str, expected: dict[tuple[str, str], tuple[float, float | None]]
) -> None:
    found = occupancy_by_period(given, period)
    assert {key: (round(o.staffed_s, 3), o.share) for key, o in found.items()} == expected


BAD = {
    "one agent's spans overlap": spans(("available", 0, 30), ("on_call", 20, 40)),
    "a span inside another": spans(("paused", 0, 60), ("available", 10, 20)),
    "a span ends before it starts": spans(("available", 30, 10)),
}


@pytest.mark.parametrize("given", BAD.values(), ids=BAD.keys())
def test_spans_that_cannot_be_are_refused(given: list[StateSpan]) -> None:
    with pytest.raises(ValueError, match="alice"):
        occupancy_by_period(given, "day")


def call(agent: str | None, minute: float, outcome: str = "answered") -> ReportCall:
    return ReportCall("acme", "acme", agent, at(minute), outcome, wait_s=5, talk_s=60, hold_s=0)


def test_by_agent_rows_carry_occupancy_and_staffed_agents_without_calls_get_one() -> None:
    staffed = spans(("available", 0, 30), ("on_call", 30, 60)) + spans(("available", 0, 60), agent="bob")
    rows = report([call("alice", 30), call("carol", 5)], group="agent", period="hour", spans=staffed)
    assert [(r["group"], r["answered"], r["staffed_s"], r["occupancy"]) for r in rows] == [
        ("alice", 1, 3600.0, 0.5),
        ("bob", 0, 3600.0, 0.0),  # staffed, no call
        ("carol", 1, 0.0, None),  # a call, but no staffed time known
    ]
    assert (rows[1]["offered"], rows[1]["service_level"]) == (0, None)


def test_by_client_or_queue_there_is_no_occupancy() -> None:
    staffed = spans(("on_call", 0, 60))
    for group in ("client", "queue"):
        (row,) = report([call("alice", 30)], group=group, period="day", spans=staffed)
        assert (row["staffed_s"], row["occupancy"]) == (None, None)
    assert COLUMNS[-2:] == ("staffed_s", "occupancy")
