"""Deriving outcome and durations from a call's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialplan.timeline import EventKind, Outcome, TimelineEvent, summarize

T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)


def ev(kind: str, t: float, **data: Any) -> TimelineEvent:
    return TimelineEvent(kind, T0 + timedelta(seconds=t), 500.0 + t, data)


def test_abandoned_call_waits_from_queued_to_hangup() -> None:
    s = summarize(
        [
            ev(EventKind.ARRIVED, 0),
            ev(EventKind.ANSWERED_BY_BRIDGE, 0.05),
            ev(EventKind.QUEUED, 0.05),
            ev(EventKind.GREETING_STARTED, 0.06),
            ev(EventKind.MUSIC_STARTED, 3.0),
            ev(EventKind.ENDED, 5.05, by="caller"),
        ]
    )
    assert s.outcome is Outcome.ABANDONED
    assert s.queue_wait_s == pytest.approx(5.0)
    assert s.duration_s == pytest.approx(5.05)
    assert s.ended_by == "caller"
    assert s.talk_s == 0


def test_rejected_call_keeps_its_status() -> None:
    s = summarize([ev(EventKind.ARRIVED, 0), ev(EventKind.REJECTED, 0, status=404)])
    assert (s.outcome, s.sip_status, s.duration_s) == (Outcome.REJECTED, 404, 0)


def test_open_call_has_no_outcome_and_counts_wait_so_far() -> None:
    s = summarize([ev(EventKind.ARRIVED, 0), ev(EventKind.QUEUED, 1)])
    assert s.outcome is None
    assert not s.closed
    assert s.queue_wait_s == 0


def test_interrupted_call_ends_at_its_last_known_instant() -> None:
    s = summarize([ev(EventKind.ARRIVED, 0), ev(EventKind.QUEUED, 1), ev(EventKind.INTERRUPTED, 7)])
    assert s.outcome is Outcome.INTERRUPTED
    assert s.queue_wait_s == pytest.approx(6)


def test_answered_call_splits_ring_talk_and_hold_per_agent() -> None:
    s = summarize(
        [
            ev(EventKind.ARRIVED, 0),
            ev(EventKind.QUEUED, 0),
            ev(EventKind.OFFERED, 2, agent="alice"),
            ev(EventKind.NO_ANSWER, 17, agent="alice"),
            ev(EventKind.OFFERED, 17, agent="bob"),
            ev(EventKind.ANSWERED, 20, agent="bob"),
            ev(EventKind.HOLD, 30),
            ev(EventKind.UNHOLD, 40),
            ev(EventKind.ENDED, 100, by="agent"),
        ]
    )
    assert s.outcome is Outcome.ANSWERED
    assert s.answered_by == "bob"
    assert s.queue_wait_s == pytest.approx(20)
    assert s.agents["alice"].ring_s == pytest.approx(15)
    assert not s.agents["alice"].answered
    assert s.agents["bob"].ring_s == pytest.approx(3)
    assert s.talk_s == pytest.approx(70)
    assert s.hold_s == pytest.approx(10)


def test_agent_lost_requeues_and_the_next_agent_gets_the_rest() -> None:
    s = summarize(
        [
            ev(EventKind.ARRIVED, 0),
            ev(EventKind.QUEUED, 0),
            ev(EventKind.OFFERED, 1, agent="alice"),
            ev(EventKind.ANSWERED, 2, agent="alice"),
            ev(EventKind.AGENT_LOST, 12, agent="alice"),
            ev(EventKind.OFFERED, 13, agent="bob"),
            ev(EventKind.ANSWERED, 15, agent="bob"),
            ev(EventKind.ENDED, 45, by="caller"),
        ]
    )
    assert s.agents["alice"].talk_s == pytest.approx(10)
    assert s.agents["bob"].talk_s == pytest.approx(30)
    assert s.queue_wait_s == pytest.approx(2 + 3)


def test_a_timeline_starts_with_its_arrival() -> None:
    with pytest.raises(ValueError, match="arrival"):
        summarize([])
    with pytest.raises(ValueError, match="arrival"):
        summarize([ev(EventKind.QUEUED, 0), ev(EventKind.ENDED, 1)])


@given(st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), min_size=1, max_size=12))
def test_parts_never_exceed_the_whole(gaps: list[float]) -> None:
    kinds = [
        EventKind.QUEUED,
        EventKind.OFFERED,
        EventKind.ANSWERED,
        EventKind.HOLD,
        EventKind.UNHOLD,
        EventKind.AGENT_LOST,
        EventKind.QUEUED,
    ]
    t = 0.0
    events = [ev(EventKind.ARRIVED, 0)]
    for i, gap in enumerate(gaps):
        t += gap
        events.append(ev(kinds[i % len(kinds)], t, agent="a"))
    events.append(ev(EventKind.ENDED, t + 1, by="caller"))
    s = summarize(events)
    assert s.queue_wait_s + s.talk_s + s.hold_s <= s.duration_s + 1e-6
    assert min(s.queue_wait_s, s.talk_s, s.hold_s, s.ring_s) >= 0


def test_parallel_offers_count_ring_time_once_for_the_call() -> None:
    s = summarize(
        [
            ev(EventKind.ARRIVED, 0),
            ev(EventKind.QUEUED, 0),
            ev(EventKind.OFFERED, 1, agent="alice"),
            ev(EventKind.OFFERED, 1, agent="bob"),
            ev(EventKind.ANSWERED, 6, agent="bob"),
            ev(EventKind.ENDED, 20, by="caller"),
        ]
    )
    assert s.ring_s == pytest.approx(5)
    assert s.agents["alice"].ring_s == pytest.approx(5)
    assert s.agents["bob"].ring_s == pytest.approx(5)


def test_losing_a_ringing_agent_does_not_end_the_talking_agents_call() -> None:
    s = summarize(
        [
            ev(EventKind.ARRIVED, 0),
            ev(EventKind.QUEUED, 0),
            ev(EventKind.OFFERED, 1, agent="alice"),
            ev(EventKind.AGENT_LOST, 3, agent="alice"),
            ev(EventKind.OFFERED, 3, agent="bob"),
            ev(EventKind.ANSWERED, 4, agent="bob"),
            ev(EventKind.AGENT_LOST, 5, agent="alice"),
            ev(EventKind.ENDED, 14, by="caller"),
        ]
    )
    assert s.agents["alice"].ring_s == pytest.approx(2)
    assert s.agents["bob"].talk_s == pytest.approx(10)
    assert s.answered_by == "bob"
    assert s.outcome is Outcome.ANSWERED


def test_caller_who_hangs_up_after_being_requeued_abandoned() -> None:
    s = summarize(
        [
            ev(EventKind.ARRIVED, 0),
            ev(EventKind.QUEUED, 0),
            ev(EventKind.OFFERED, 1, agent="alice"),
            ev(EventKind.ANSWERED, 2, agent="alice"),
            ev(EventKind.AGENT_LOST, 12, agent="alice"),
            ev(EventKind.ENDED, 20, by="caller"),
        ]
    )
    assert s.outcome is Outcome.ABANDONED
    assert s.answered_by is None
    assert s.agents["alice"].talk_s == pytest.approx(10)
    assert s.agents["alice"].answered
    assert s.queue_wait_s == pytest.approx(2 + 8)


def test_a_caller_sent_to_the_final_fallback_is_not_counted_abandoned() -> None:
    timeline = [
        ev(EventKind.ARRIVED, 0),
        ev(EventKind.QUEUED, 0.05),
        # Moved to an overflow queue: still waiting, still the same call.
        ev(EventKind.FALLBACK, 30.05, queue="acme", reason="max_wait", to="acme-overflow"),
        ev(EventKind.FALLBACK, 90.05, queue="acme-overflow", reason="max_wait", final=True),
        ev(EventKind.ENDED, 94.0, by="bridge"),
    ]
    s = summarize(timeline)
    assert (s.outcome, s.ended_by) == (Outcome.FALLBACK, "bridge")
    assert s.queue_wait_s == pytest.approx(93.95), "the message before the hang-up counts as waiting"
    # Hanging up during the overflow queue, before any final fallback, is abandoning.
    assert summarize([*timeline[:3], ev(EventKind.ENDED, 50.0, by="caller")]).outcome is Outcome.ABANDONED


def test_wrap_up_runs_from_the_call_s_end_to_its_agent_s_wrap_up_ended() -> None:
    timeline = [
        ev(EventKind.ARRIVED, 0),
        ev(EventKind.QUEUED, 0),
        ev(EventKind.ANSWERED, 10, agent="alice"),
        ev(EventKind.ENDED, 70, by="caller"),
        ev(EventKind.WRAP_UP_ENDED, 82.5, agent="alice"),
    ]
    s = summarize(timeline)
    assert (s.outcome, s.talk_s, s.wrap_up_s, s.duration_s) == (Outcome.ANSWERED, 60.0, 12.5, 70.0)
    assert s.agents["alice"].wrap_up_s == 12.5
    assert summarize(timeline[:-1]).wrap_up_s == 0.0, "until the wrap-up ends, there is none to count"
    # Another agent's wrap-up (one who was lost earlier) is not this call's.
    assert summarize([*timeline[:-1], ev(EventKind.WRAP_UP_ENDED, 90, agent="bob")]).wrap_up_s == 0.0
