"""The queue engine's rules, one at a time (dialplan/router.py), on a virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dialplan.offers import REOFFER_AFTER_S
from dialplan.queues import (
    Absence,
    AgentTimers,
    Announcements,
    Fallback,
    FallbackKind,
    QueueConfig,
    ShiftRules,
    Strategy,
)
from dialplan.router import (
    MAX_FALLBACK_HOPS,
    Action,
    AgentChanged,
    Announce,
    CancelOffer,
    NoShow,
    Offer,
    Router,
    RouterError,
    SendToFallback,
)
from dialplan.schedule import WeeklyCalendar, WeeklySpan
from dialplan.tenant import Agent, Client, Greeting, ServedClient, Shift, Tenant

UTCZ = ZoneInfo("UTC")
MON_9 = datetime(2026, 11, 23, 9, tzinfo=UTC)


def agent(login: str, **levels: int) -> Agent:
    return Agent(login, login.title(), "$argon2id$x", tuple(ServedClient(c, lvl) for c, lvl in levels.items()))


def slot(login: str, start: int = 8, end: int = 12) -> Shift:
    spans = tuple(WeeklySpan(d, time(start), d, time(end)) for d in range(5))
    return Shift(login, WeeklyCalendar(UTCZ, weekly=spans))


def tenant(*extra_shifts: Shift) -> Tenant:
    clients = {c: Client(c, c.title(), UTCZ, Greeting(text="hi"), wrap_up_s=20) for c in ("acme", "globex")}
    agents = {
        "ann": agent("ann", acme=1, globex=1),
        "ben": agent("ben", acme=1),
        "cat": agent("cat", acme=2),
        "dan": agent("dan", globex=1),
    }
    shifts = extra_shifts or tuple(slot(login) for login in agents)
    return Tenant("t", "T", clients, (), agents, shifts)


QUIET = Announcements(position=False)
POSITION = Announcements(position=True, position_every_s=30)


class Floor:
    """A router on a virtual clock that keeps every action it emitted."""

    def __init__(self, *queues: QueueConfig, tenant_: Tenant | None = None, **kwargs: Any) -> None:
        self.now = MON_9
        self.router = Router(
            tenant_ or tenant(), queues or (QueueConfig("acme", "acme", announcements=QUIET),), **kwargs
        )
        self.log: list[Action] = []

    def __call__(self, actions: list[Action]) -> list[Action]:
        self.log += actions
        return actions

    def advance(self, seconds: float) -> list[Action]:
        self.now += timedelta(seconds=seconds)
        return self(self.router.step(self.now))

    def ready(self, *logins: str) -> None:
        for login in logins:
            self(self.router.connect(login, self.now))
            self(self.router.set_available(login, self.now))
            self.now += timedelta(seconds=1)

    def arrive(self, call_id: str, queue: str = "acme", priority: int = 0) -> list[Action]:
        return self(self.router.arrive(call_id, queue, self.now, priority=priority))

    def offers(self, actions: list[Action] | None = None) -> list[tuple[str, tuple[str, ...]]]:
        return [(a.call_id, a.agents) for a in (self.log if actions is None else actions) if isinstance(a, Offer)]

    def state(self, login: str) -> tuple[str, str | None]:
        agent = self.router.agents[login]
        return agent.state, agent.reason

    def answer(self, call_id: str, login: str) -> list[Action]:
        return self(self.router.answered(call_id, login, self.now))

    def end(self, call_id: str, login: str, talk_s: float = 60, earned: str = "0") -> list[Action]:
        return self(self.router.call_ended(call_id, login, self.now, talk_s=talk_s, earned=Decimal(earned)))


# ---- offers ---------------------------------------------------------------------------------


def test_the_longest_idle_eligible_agent_is_offered_the_call() -> None:
    floor = Floor()
    floor.ready("ben", "ann")  # ben first: idle longest
    assert floor.offers(floor.arrive("c1")) == [("c1", ("ben",))]
    assert floor.state("ben") == ("ringing", None)


def test_callers_are_served_by_priority_then_arrival() -> None:
    floor = Floor()
    for call_id, priority in (("c1", 0), ("c2", 0), ("vip", 5), ("c3", 0)):
        floor.arrive(call_id, priority=priority)
        floor.now += timedelta(seconds=1)
    assert floor.router.waiting("acme") == ["vip", "c1", "c2", "c3"]
    assert floor.router.position("c2") == 3
    floor.ready("ben")
    assert floor.offers() == [("vip", ("ben",))]


def test_lower_level_agents_are_offered_a_call_only_after_the_tier_delay() -> None:
    floor = Floor(QueueConfig("acme", "acme", tier_delay_s=15, announcements=QUIET))
    floor.ready("cat")  # acme at level 2
    floor.arrive("c1")
    assert floor.offers() == []
    floor.advance(14)
    assert floor.offers() == []
    floor.advance(1)
    assert floor.offers() == [("c1", ("cat",))]
    assert floor.router.next_deadline(floor.now) is not None


def test_a_missed_offer_rings_the_next_agent_and_rests_the_first() -> None:
    timers = {"acme": AgentTimers(no_answer_delay_s=30, max_no_answer=3)}
    floor = Floor(timers=timers)
    floor.ready("ben", "ann")
    floor.arrive("c1")
    moved = floor.advance(15)  # the ring timeout
    assert CancelOffer("c1", "ben", "timeout") in moved
    assert floor.offers(moved) == [("c1", ("ann",))]
    floor.answer("c1", "ann")
    # Ben is available again but rests 30 s: a new caller waits meanwhile.
    assert floor.state("ben") == ("available", None)
    floor.arrive("c2")
    floor.advance(29)
    assert floor.offers()[-1] == ("c1", ("ann",))
    assert floor.offers(floor.advance(1)) == [("c2", ("ben",))]


def test_an_agent_who_misses_max_no_answer_offers_in_a_row_is_paused() -> None:
    floor = Floor(timers={"acme": AgentTimers(max_no_answer=2, no_answer_delay_s=0)})
    floor.ready("ben")
    floor.arrive("c1")
    floor.advance(15)
    assert floor.state("ben") == ("available", None)
    floor.arrive("c2")  # c1 passed ben recently, so c2 rings him
    floor.advance(15)
    assert floor.state("ben") == ("paused", "missed calls")


def test_a_decline_rests_the_agent_for_reject_delay_and_the_call_goes_on() -> None:
    floor = Floor(timers={"acme": AgentTimers(reject_delay_s=40)})
    floor.ready("ben", "ann")
    floor.arrive("c1")
    moved = floor(floor.router.declined("c1", "ben", floor.now))
    assert floor.offers(moved) == [("c1", ("ann",))]
    floor.answer("c1", "ann")
    floor.arrive("c2")
    assert floor.offers()[-1][0] == "c1", "ben rests"
    floor.advance(40)
    assert floor.offers()[-1] == ("c2", ("ben",))


def test_the_only_agent_who_declined_is_rung_again_after_a_pause() -> None:
    floor = Floor(timers={"acme": AgentTimers(reject_delay_s=0)})
    floor.ready("ben")
    floor.arrive("c1")
    floor(floor.router.declined("c1", "ben", floor.now))
    assert floor.advance(REOFFER_AFTER_S - 1) == []
    assert floor.offers(floor.advance(1)) == [("c1", ("ben",))]


def test_busy_rests_the_agent_for_busy_delay() -> None:
    floor = Floor(timers={"acme": AgentTimers(busy_delay_s=25)})
    floor.ready("ben")
    floor.arrive("c1")
    floor(floor.router.busy("c1", "ben", floor.now))
    floor.arrive("c2")
    floor.advance(24)
    assert floor.offers() == [("c1", ("ben",))]
    assert floor.offers(floor.advance(1)) == [("c1", ("ben",))]


def test_ring_all_rings_everyone_and_the_first_answer_cancels_the_rest() -> None:
    floor = Floor(QueueConfig("acme", "acme", strategy=Strategy.RING_ALL, announcements=QUIET))
    floor.ready("ann", "ben")
    assert floor.offers(floor.arrive("c1")) == [("c1", ("ann", "ben"))]
    floor.arrive("c2")
    answered = floor.answer("c1", "ben")
    assert CancelOffer("c1", "ann", "answered_elsewhere") in answered
    assert floor.state("ben") == ("on_call", None)
    # Free again at once, ann rings for the next caller.
    assert floor.offers(answered) == [("c2", ("ann",))]


def test_a_closed_page_while_ringing_goes_to_the_next_agent_at_once() -> None:
    floor = Floor()
    floor.ready("ben", "ann")
    floor.arrive("c1")
    moved = floor(floor.router.disconnect("ben", floor.now))
    assert CancelOffer("c1", "ben", "agent_gone") in moved
    assert floor.offers(moved) == [("c1", ("ann",))]
    assert floor.state("ben") == ("paused", "disconnected")


# ---- wrap-up and earnings -------------------------------------------------------------------


def test_wrap_up_holds_across_every_queue_the_agent_belongs_to() -> None:
    # Asterisk's app_queue applies wrapuptime per queue: an agent in two queues is rung by the
    # other queue during wrap-up. Here wrap-up is the agent's, whichever queue rings next.
    floor = Floor(
        QueueConfig("acme", "acme", announcements=QUIET), QueueConfig("globex", "globex", announcements=QUIET)
    )
    floor.ready("ann")
    floor.arrive("c1", "acme")
    floor.answer("c1", "ann")
    floor.end("c1", "ann")
    assert floor.state("ann") == ("wrap_up", None)
    floor.arrive("g1", "globex")
    floor.advance(19)
    assert floor.offers() == [("c1", ("ann",))], "no globex call during acme's 20 s wrap-up"
    assert floor.offers(floor.advance(1)) == [("g1", ("ann",))]


def test_fair_earnings_offers_to_the_agent_who_earned_least_today() -> None:
    floor = Floor(
        QueueConfig("acme", "acme", strategy=Strategy.FAIR_EARNINGS, announcements=QUIET),
        timers={"acme": AgentTimers(wrap_up_s=0)},
    )
    floor.ready("ann", "ben")
    floor.arrive("c1")
    assert floor.offers()[-1] == ("c1", ("ann",)), "equal earnings: the longest idle"
    floor.answer("c1", "ann")
    floor.arrive("c2")
    floor.answer("c2", "ben")
    floor.end("c2", "ben", earned="3.00")
    floor.advance(30)
    floor.end("c1", "ann", earned="1.20")
    # Ben has been idle longer, but ann has earned less today.
    floor.arrive("c3")
    assert floor.offers()[-1] == ("c3", ("ann",))
    # A new day starts everyone at zero: the longest idle again.
    floor.answer("c3", "ann")
    floor.end("c3", "ann", earned="0")  # still under ben: only the reset can give c4 to ben
    floor.now = MON_9 + timedelta(days=1)
    floor.arrive("c4")
    assert floor.offers()[-1] == ("c4", ("ben",))


# ---- limits and fallbacks -------------------------------------------------------------------


def test_a_full_queue_sends_the_caller_to_its_fallback_queue() -> None:
    overflow = Fallback(FallbackKind.QUEUE, "globex")
    floor = Floor(
        QueueConfig("acme", "acme", max_length=1, fallback=overflow, announcements=QUIET),
        QueueConfig("globex", "globex", announcements=QUIET),
    )
    floor.arrive("c1")
    moved = floor.arrive("c2")
    assert SendToFallback("c2", "acme", overflow, "queue_full") in moved
    assert floor.router.waiting("globex") == ["c2"]
    floor.ready("dan")
    assert floor.offers() == [("c2", ("dan",))]


def test_max_wait_sends_the_caller_to_the_fallback() -> None:
    voicemail = Fallback(FallbackKind.VOICEMAIL)
    floor = Floor(QueueConfig("acme", "acme", max_wait_s=120, fallback=voicemail, announcements=QUIET))
    floor.arrive("c1")
    assert floor.advance(119) == []
    assert floor.advance(1) == [SendToFallback("c1", "acme", voicemail, "max_wait")]
    assert floor.router.waiting("acme") == []


def test_fallback_chains_stop_after_a_few_hops() -> None:
    a_to_b = QueueConfig("a", "acme", max_length=0, fallback=Fallback(FallbackKind.QUEUE, "b"), announcements=QUIET)
    b_to_a = QueueConfig("b", "acme", max_length=0, fallback=Fallback(FallbackKind.QUEUE, "a"), announcements=QUIET)
    floor = Floor(a_to_b, b_to_a)
    moved = floor.arrive("c1", "a")
    fallbacks = [a for a in moved if isinstance(a, SendToFallback)]
    assert len(fallbacks) == MAX_FALLBACK_HOPS + 1
    assert fallbacks[-1].reason == "too_many_hops"
    assert fallbacks[-1].fallback.kind is FallbackKind.HANGUP
    assert floor.router.callers == {}


def test_join_unless_refuses_a_caller_nobody_could_serve() -> None:
    message = Fallback(FallbackKind.HANGUP, message="closed")
    q = QueueConfig(
        "acme",
        "acme",
        join_unless=frozenset({Absence.UNAVAILABLE, Absence.OFF_SHIFT}),
        fallback=message,
        announcements=POSITION,
    )
    floor = Floor(q)
    assert floor.arrive("c1") == [SendToFallback("c1", "acme", message, "no_agents")]
    floor(floor.router.connect("ben", floor.now))  # connected, paused: could come back
    assert floor.arrive("c2") == [Announce("c2", "position", position=1)]


def test_leave_when_sends_waiting_callers_away_once_every_agent_is_gone() -> None:
    q = QueueConfig("acme", "acme", leave_when=frozenset({Absence.UNAVAILABLE}), announcements=QUIET)
    floor = Floor(q)
    floor(floor.router.connect("ben", floor.now))
    floor.arrive("c1")
    assert floor.router.waiting("acme") == ["c1"]
    moved = floor(floor.router.disconnect("ben", floor.now))
    assert [a.reason for a in moved if isinstance(a, SendToFallback)] == ["left_empty"]


# ---- shifts ---------------------------------------------------------------------------------


def test_no_offers_in_the_last_minutes_of_a_slot_and_a_pause_when_it_ends() -> None:
    floor = Floor(shift_rules=ShiftRules(last_offer_before_end_s=120))
    floor.ready("ben")
    floor.now = MON_9.replace(hour=11, minute=58)
    floor.arrive("c1")
    assert floor.offers() == []
    floor.advance(120)  # 12:00, the slot is over
    assert floor.state("ben") == ("paused", "end of shift")
    with pytest.raises(RouterError) as refused:
        floor.router.set_available("ben", floor.now)
    assert refused.value.code == "not_on_shift"


def test_agents_are_offered_only_their_clients_calls() -> None:
    floor = Floor(
        QueueConfig("acme", "acme", announcements=QUIET), QueueConfig("globex", "globex", announcements=QUIET)
    )
    floor.ready("dan")  # globex only
    floor.arrive("c1", "acme")
    assert floor.offers() == []
    floor.arrive("g1", "globex")
    assert floor.offers() == [("g1", ("dan",))]


def test_a_slot_nobody_connected_to_is_a_no_show_reported_once() -> None:
    floor = Floor(shift_rules=ShiftRules(no_show_after_s=600))
    floor.now = MON_9.replace(hour=8, minute=5)
    floor(floor.router.connect("ann", floor.now))
    floor.now = MON_9.replace(hour=8, minute=10)
    shows = floor.router.no_shows(floor.now)
    slot_start = MON_9.replace(hour=8)
    assert sorted(a.login for a in shows if isinstance(a, NoShow)) == ["ben", "cat", "dan"]
    assert all(isinstance(a, NoShow) and a.slot_start == slot_start for a in shows)
    assert floor.router.no_shows(floor.now + timedelta(minutes=5)) == []


# ---- fairness and announcements -------------------------------------------------------------


def test_the_caller_who_waited_longest_overall_goes_first_weighted_by_queue() -> None:
    floor = Floor(
        QueueConfig("acme", "acme", announcements=QUIET),
        QueueConfig("vip", "acme", weight=3.0, announcements=QUIET),
    )
    floor.arrive("plain")  # waits 60 s
    floor.advance(40)
    floor.arrive("vip1", "vip")  # waits 20 s, weighted 60: ties go to the earlier arrival
    floor.advance(20)
    floor.ready("ben")
    assert floor.offers() == [("plain", ("ben",))]
    floor.arrive("vip2", "vip")
    floor.advance(1)
    floor.answer("plain", "ben")
    floor.end("plain", "ben")
    floor.advance(20)  # wrap-up over: vip1 has waited 81 s x 3, vip2 21 s x 3
    assert floor.offers()[-1] == ("vip1", ("ben",))


def test_position_announcements_repeat_never_overlap_and_never_while_ringing() -> None:
    q = QueueConfig(
        "acme",
        "acme",
        announcements=Announcements(position=True, position_every_s=30, periodic_message="thanks", periodic_every_s=30),
    )
    floor = Floor(q)
    assert floor.arrive("c1") == [Announce("c1", "position", position=1)]
    moved = floor.advance(30)
    # Both are due: one now, the other ANNOUNCEMENT_GAP_S later.
    assert moved == [Announce("c1", "position", position=1)]
    assert floor.advance(10) == [Announce("c1", "periodic", message="thanks")]
    floor.ready("ben")
    assert floor.offers() == [("c1", ("ben",))]
    assert [a for a in floor.advance(14) if isinstance(a, Announce)] == [], "ringing: no announcement"


def test_an_agent_lost_mid_call_sends_the_caller_back_to_the_front() -> None:
    floor = Floor()
    floor.ready("ben")
    floor.arrive("c1")
    floor.answer("c1", "ben")
    floor.advance(30)
    floor.arrive("c2")
    moved = floor(floor.router.agent_lost("c1", floor.now))
    assert AgentChanged("ben", "paused", "disconnected") in moved
    assert floor.router.waiting("acme") == ["c1", "c2"]


def test_an_agent_whose_page_closed_during_a_call_comes_back_paused() -> None:
    floor = Floor(timers={"acme": AgentTimers(wrap_up_s=0)})
    floor.ready("ben")
    floor.arrive("c1")
    floor.answer("c1", "ben")
    floor(floor.router.disconnect("ben", floor.now))
    assert floor.state("ben") == ("on_call", None), "the call itself goes on (media doesn't need the page)"
    floor.end("c1", "ben")
    assert floor.state("ben") == ("paused", "disconnected")
    floor(floor.router.connect("ben", floor.now))
    floor.arrive("c2")
    assert floor.offers() == [("c1", ("ben",))], "not rung before choosing to go available"


def test_events_that_make_no_sense_are_refused_with_a_reason() -> None:
    floor = Floor()
    with pytest.raises(RouterError) as unknown:
        floor.router.arrive("c1", "nope", floor.now)
    assert unknown.value.code == "unknown_queue"
    floor.arrive("c1")
    with pytest.raises(RouterError) as twice:
        floor.router.arrive("c1", "acme", floor.now)
    assert twice.value.code == "duplicate_call"
    with pytest.raises(RouterError) as not_ringing:
        floor.router.answered("c1", "ben", floor.now)
    assert not_ringing.value.code == "no_such_offer"
    with pytest.raises(RouterError) as not_connected:
        floor.router.set_available("ben", floor.now)
    assert not_connected.value.code == "not_connected"
