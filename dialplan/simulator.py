"""A day of calls on a virtual clock, through the same `Router` the bridge runs.

Callers arrive, agents connect at the start of their slots and leave at
the end, every offer is answered a fixed time after it rings, calls last
their talk time, and the router's own timers (wrap-up, rests, shift ends)
do the rest. The clock jumps from one instant to the next: the next event
of the day (an arrival, an answer, a call's end, a caller's patience
running out, a slot starting or ending), the router's `next_deadline`, or
a minute later, whichever comes first, so shift changes are seen on time.

Pure: a tenant, queues, calls and parameters in, a `DayResult` out. The
randomness (arrival times, talk times, patience) is drawn up front from
seeds, so two strategies can be run on exactly the same calls.

The figures, per queue (and per client, over the client's queues):

- offered: calls that arrived in the queue; each ends answered, abandoned
  (the caller hung up while waiting or ringing) or fallback (the router
  sent them out of the queues: full, no agents, max wait...). A caller
  still waiting when the simulation closes counts as abandoned there.
- wait: from arrival to the agent's answer, or to hanging up, or to the
  fallback. It includes the ringing before the answer.
- service level: answered within `within_s` over answered plus abandoned
  after `within_s`. A caller who hangs up within `within_s` is left out
  of both: Erlang C has no abandonment, and all we know of that caller is
  that they would have waited longer than their patience, not whether
  longer than `within_s`; abandoning later means a wait over `within_s`,
  a miss. Fallbacks are left out too: they leave by the queue's rules.
- ASA (average speed of answer): the mean wait of answered calls.
- abandonment rate: abandoned over offered.
- Erlang C, for the same traffic: over the queue's busy period (its first
  to its last arrival), the arrival rate, the mean handle time (the mean
  talk time of the queue's calls, plus the client's wrap-up, plus the
  time an offer rings before the answer) and the average number of agents
  logged in on a slot covering the client, rounded to a whole number of
  agents. The ring before the answer being part of the handle time, the
  Erlang wait ends at the offer: Erlang's share within `within_s - ring`
  and its ASA plus the ring compare with the simulated answer times.

Per agent: logged-in time, answered calls, talk time, wrap-up time,
occupancy = (talk + wrap-up) / logged-in time, and earnings by currency.
The Gini coefficient of earnings is over the agents who logged in, on
their earnings summed across currencies, as `fair_earnings` compares them.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from dialplan import erlang
from dialplan.queues import AgentTimers, Announcements, QueueConfig, ShiftRules
from dialplan.router import Action, AgentChanged, CancelOffer, Offer, Router, RouterError, SendToFallback
from dialplan.schedule import Interval
from dialplan.shifts import Slot, upcoming_slots
from dialplan.tenant import Tenant

SERVICE_WITHIN_S = 20.0
# The router needs a step at least this often to see slots start and end.
TICK_S = 60.0
# After the day, agents still on a slot serve the callers left waiting; past
# this, whoever still waits is counted as abandoned and the simulation closes.
DRAIN_LIMIT_S = 4 * 3600.0
DAY_S = 86400.0

_UTC_ZONE = ZoneInfo("UTC")
# Agent states in which a leaving agent stays until the call and its wrap-up are over.
_BUSY = frozenset({"on_call", "wrap_up"})


# ---- the calls --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateWindow:
    """Poisson arrivals for a client: `per_hour` on average, from `from_s` to `to_s` after local midnight."""

    client_id: str
    per_hour: float
    from_s: float = 0.0
    to_s: float = DAY_S


@dataclass(frozen=True)
class Arrival:
    """A caller arriving. None: drawn from the model; `patience_s` math.inf: never hangs up."""

    at: datetime
    client_id: str
    talk_s: float | None = None
    patience_s: float | None = None


@dataclass(frozen=True)
class Call:
    """An arrival with everything drawn: what the simulation replays."""

    call_id: str
    at: datetime
    client_id: str
    talk_s: float
    patience_s: float


def local_instant(day: date, seconds: float, zone: ZoneInfo) -> datetime:
    """`seconds` of wall-clock time after local midnight of `day` in `zone`, in UTC (86400: the next midnight)."""
    # Aware datetime arithmetic is wall-clock arithmetic: 09:00 stays 09:00 on a DST day.
    wall = datetime.combine(day, time(), tzinfo=zone) + timedelta(seconds=seconds)
    return wall.astimezone(UTC)


def day_span(tenant: Tenant, day: date) -> tuple[datetime, datetime]:
    """The simulated day: from the first to the last midnight of `day` in UTC and in the clients' zones."""
    zones = [_UTC_ZONE, *(client.timezone for client in tenant.clients.values())]
    return (
        min(local_instant(day, 0.0, zone) for zone in zones),
        max(local_instant(day, DAY_S, zone) for zone in zones),
    )


def poisson_arrivals(tenant: Tenant, day: date, windows: Iterable[RateWindow], seed: int) -> list[Arrival]:
    """Arrivals at random over each window, in the client's local time on `day`, in time order."""
    rng = random.Random(f"arrivals:{seed}")  # noqa: S311 (reproducible, not secret)
    found: list[Arrival] = []
    for window in windows:
        if window.per_hour <= 0:
            continue
        zone = tenant.clients[window.client_id].timezone
        start = local_instant(day, window.from_s, zone)
        length = (local_instant(day, window.to_s, zone) - start).total_seconds()
        offset = rng.expovariate(window.per_hour / 3600.0)
        while offset < length:
            found.append(Arrival(start + timedelta(seconds=offset), window.client_id))
            offset += rng.expovariate(window.per_hour / 3600.0)
    return sorted(found, key=lambda a: (a.at, a.client_id))


def draw_calls(
    arrivals: Iterable[Arrival], *, mean_talk_s: float, mean_patience_s: float | None, seed: int
) -> tuple[Call, ...]:
    """Numbered calls in time order; missing talk times and patience drawn exponential with the given means.

    `mean_patience_s` None: callers never hang up.
    """
    if not mean_talk_s > 0:
        raise ValueError(f"mean_talk_s must be > 0, got {mean_talk_s!r}")
    if mean_patience_s is not None and not mean_patience_s > 0:
        raise ValueError(f"mean_patience_s must be > 0 or None, got {mean_patience_s!r}")
    rng = random.Random(f"calls:{seed}")  # noqa: S311 (reproducible, not secret)
    calls: list[Call] = []
    for number, arrival in enumerate(sorted(arrivals, key=lambda a: a.at), start=1):
        talk_s = arrival.talk_s if arrival.talk_s is not None else rng.expovariate(1.0 / mean_talk_s)
        patience_s = arrival.patience_s
        if patience_s is None:
            patience_s = math.inf if mean_patience_s is None else rng.expovariate(1.0 / mean_patience_s)
        calls.append(Call(f"call-{number:05d}", arrival.at, arrival.client_id, talk_s, patience_s))
    return tuple(calls)


# ---- the result -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallOutcome:
    call_id: str
    client_id: str
    # The queue the call arrived in.
    queue_id: str
    arrived_at: datetime
    # answered | abandoned | fallback
    outcome: str
    # Until the answer, the hang-up or the fallback.
    wait_s: float
    agent: str | None = None
    talk_s: float = 0.0
    earned: Decimal = Decimal(0)
    # fallback: the router's reason; abandoned: patience, or closed (still waiting when the simulation closed).
    reason: str | None = None


@dataclass(frozen=True)
class ErlangFigures:
    arrivals_per_h: float
    mean_handle_s: float
    load: float
    # Agents logged in on a slot covering the client, on average over the busy period.
    staffed: float
    # `staffed` rounded: the agents Erlang C is given.
    agents: int
    # None: the load reaches the agents, the queue grows without bound.
    service_level: float | None
    asa_s: float | None


@dataclass(frozen=True)
class TrafficStats:
    """One queue's calls, or one client's over its queues."""

    name: str
    client_id: str
    offered: int
    answered: int
    abandoned: int
    fallback: int
    answered_within: int
    abandoned_within: int
    # None when there is nothing to divide by.
    service_level: float | None
    asa_s: float | None
    abandonment_rate: float | None
    # Per queue only.
    erlang: ErlangFigures | None = None


@dataclass(frozen=True)
class AgentStats:
    login: str
    logged_in_s: float
    calls: int
    talk_s: float
    wrap_up_s: float
    occupancy: float | None
    earned: Mapping[str, Decimal]

    @property
    def earned_total(self) -> Decimal:
        return sum(self.earned.values(), Decimal(0))


@dataclass(frozen=True)
class DayResult:
    start: datetime
    end: datetime
    # When the simulation stopped: from `end` on, once nobody waits and no call goes on (see `simulate`).
    closed_at: datetime
    within_s: float
    calls: tuple[CallOutcome, ...]
    queues: tuple[TrafficStats, ...]
    clients: tuple[TrafficStats, ...]
    agents: tuple[AgentStats, ...]
    earnings_gini: float


# ---- the simulation ---------------------------------------------------------------------------


def simulate(
    tenant: Tenant,
    queues: Sequence[QueueConfig],
    calls: Sequence[Call],
    *,
    start: datetime,
    end: datetime,
    answer_after_s: float = 3.0,
    within_s: float = SERVICE_WITHIN_S,
    timers: Mapping[str, AgentTimers] | None = None,
    shift_rules: ShiftRules | None = None,
    seed: int = 0,
) -> DayResult:
    """Run `calls` (arriving in [start, end)) through a `Router` for `queues`, agents working their slots.

    A call joins the queue named after its client, else the client's first queue. Agents connect
    when their slot starts (at `start` if it is running) and go available; overlapping and
    back-to-back slots make one stretch logged in. At its end they disconnect, once the call they
    are on and its wrap-up are over; a stretch running past `end` keeps them to the close. The
    simulation closes at the first instant from `end` on at which nobody waits and no call goes on.
    Callers still waiting once no agent is logged in after `end`, or `DRAIN_LIMIT_S` after it, are
    counted as abandoned there (reason "closed").

    Every offer is answered `answer_after_s` after it rings (by the first agent of a ring_all
    group). `timers`, `shift_rules` and `seed` go to the router as they are. Raises ValueError
    for a call it can't place and for an `answer_after_s` not shorter than every queue's ring
    timeout (each offer would time out instead).
    """
    if not queues:
        raise ValueError("no queues")
    if not 0 <= answer_after_s < min(q.ring_timeout_s for q in queues):
        raise ValueError(f"answer_after_s must be >= 0 and shorter than every ring timeout, got {answer_after_s!r}")
    for call in calls:
        if not start <= call.at < end:
            raise ValueError(f"{call.call_id} arrives at {call.at.isoformat()}, outside [{start}, {end})")
    floor = _Floor(
        tenant,
        queues,
        calls,
        start=start,
        end=end,
        answer_after=timedelta(seconds=answer_after_s),
        timers=timers,
        shift_rules=shift_rules,
        seed=seed,
    )
    floor.run()
    return _result(floor, within_s)


def queue_for(queues: Sequence[QueueConfig], client_id: str) -> QueueConfig:
    """The queue a client's calls join: the one named after the client, else the client's first."""
    mine = [q for q in queues if q.client_id == client_id]
    if not mine:
        raise ValueError(f"no queue for client {client_id!r}")
    return next((q for q in mine if q.id == client_id), mine[0])


def _quiet(queue: QueueConfig) -> QueueConfig:
    """The queue without announcements: nobody hears them here, and they change no offer.

    Each waiting caller gives the router a deadline every 10 to 30 s for them, and every step
    looks at every caller: with hundreds waiting (a night of callers who never hang up) the
    clock crawls. 147 callers piling up before a shift took 40 s with them, 0.1 s without.
    """
    return replace(queue, announcements=Announcements(position=False))


class _Floor:
    """The mutable side of one simulated day: the router, the event heap and what happened."""

    def __init__(
        self,
        tenant: Tenant,
        queues: Sequence[QueueConfig],
        calls: Sequence[Call],
        *,
        start: datetime,
        end: datetime,
        answer_after: timedelta,
        timers: Mapping[str, AgentTimers] | None,
        shift_rules: ShiftRules | None,
        seed: int,
    ) -> None:
        self.start, self.end = start, end
        self.close_by = end + timedelta(seconds=DRAIN_LIMIT_S)
        self.tenant = tenant
        quiet = [_quiet(queue) for queue in queues]
        self.router = Router(self.tenant, quiet, timers=timers, shift_rules=shift_rules, seed=seed)
        self.answer_after = answer_after
        self.now = start
        self.calls = {call.call_id: call for call in calls}
        self.queue_of = {call.call_id: queue_for(queues, call.client_id).id for call in calls}
        self.outcomes: dict[str, CallOutcome] = {}
        # The heap: (at, seq, kind, call id or "", login or "").
        self._events: list[tuple[datetime, int, str, str, str]] = []
        self._seq = itertools.count()
        # Per call being offered: the agents ringing, and who answers, with their answer event.
        self._ringing: dict[str, list[str]] = {}
        self._answerer: dict[str, tuple[str, int, datetime]] = {}
        self._stepped = False
        self.slots: dict[str, list[Slot]] = {}
        self.sessions: dict[str, list[Interval]] = defaultdict(list)
        self._connected_at: dict[str, datetime] = {}
        self._leaving: set[str] = set()
        self._states: dict[str, tuple[str, datetime]] = {}
        self.wrap_up_s: dict[str, float] = defaultdict(float)

    # ---- the clock ----------------------------------------------------------------------------

    def run(self) -> None:
        self._schedule_agents()
        for call in self.calls.values():
            self._push(call.at, "arrive", call.call_id)
        # Nothing to do then but look: the day's end and the drain limit are seen on the dot.
        self._push(self.end, "look", "")
        self._push(self.close_by, "look", "")
        while True:
            if self.now >= self.end and not (self.router.callers or self.router.live or self._leaving):
                break
            if self.router.callers and (self.now >= self.close_by or (self.now >= self.end and not self._connected_at)):
                self._close()
                continue
            instants = [self.now + timedelta(seconds=TICK_S)]
            if self._events:
                instants.append(self._events[0][0])
            deadline = self.router.next_deadline(self.now)
            if deadline is not None:
                instants.append(deadline)
            self.now = min(instants)
            self._stepped = False
            while self._events and self._events[0][0] <= self.now:
                _, seq, kind, subject, login = heapq.heappop(self._events)
                self._handle(kind, subject, login, seq)
            if not self._stepped:
                self._apply(self.router.step(self.now))
        for login in list(self._connected_at):
            self._end_session(login)
        for login, (state, since) in self._states.items():
            if state == "wrap_up":
                self.wrap_up_s[login] += (self.now - since).total_seconds()

    def _push(self, at: datetime, kind: str, subject: str, login: str = "") -> int:
        seq = next(self._seq)
        heapq.heappush(self._events, (at, seq, kind, subject, login))
        return seq

    def _schedule_agents(self) -> None:
        days = math.ceil((self.end - self.start).total_seconds() / DAY_S) + 1
        for login in sorted(self.tenant.agents):
            slots = [s for s in upcoming_slots(self.tenant, login, self.start, days) if s.start < self.end]
            self.slots[login] = slots
            # Overlapping and back-to-back slots make one stretch logged in.
            stretches: list[Interval] = []
            for slot in slots:
                if stretches and slot.start <= stretches[-1].end:
                    stretches[-1] = Interval(stretches[-1].start, max(stretches[-1].end, slot.end))
                else:
                    stretches.append(Interval(slot.start, slot.end))
            connects = {max(stretch.start, self.start) for stretch in stretches}
            for stretch in stretches:
                self._push(max(stretch.start, self.start), "connect", "", login)
                # A stretch running past the day's end stays logged in until the simulation closes.
                if stretch.end <= self.end:
                    self._push(stretch.end, "leave", "", login)
            for slot in slots:
                # A slot starting within a stretch: back from the previous slot's "end of shift" pause.
                if slot.start > self.start and slot.start not in connects:
                    self._push(slot.start, "slot", "", login)

    # ---- events -------------------------------------------------------------------------------

    def _handle(self, kind: str, subject: str, login: str, seq: int) -> None:
        now = self.now
        if kind == "arrive":
            call = self.calls[subject]
            self._routed(self.router.arrive(subject, self.queue_of[subject], now))
            if math.isfinite(call.patience_s):
                self._push(call.at + timedelta(seconds=call.patience_s), "patience", subject)
        elif kind == "patience":
            if subject in self.router.callers:
                self._routed(self.router.hang_up(subject, now))
                self._finish(subject, "abandoned", reason="patience")
        elif kind == "answer":
            expected = self._answerer.get(subject)
            if expected is None or expected[:2] != (login, seq):
                return
            self._answer(subject, login)
        elif kind == "end":
            outcome = self.outcomes[subject]
            self._routed(self.router.call_ended(subject, login, now, talk_s=outcome.talk_s, earned=outcome.earned))
        elif kind == "connect":
            if login in self._connected_at:
                # Back on shift before the last call of their previous slot ended: they stay on.
                self._leaving.discard(login)
            else:
                self._connected_at[login] = now
                self._routed(self.router.connect(login, now))
            self._make_available(login)
        elif kind == "slot":
            if login in self._connected_at and self._state_of(login) == "paused":
                self._make_available(login)
        elif kind == "leave":
            if self._state_of(login) in _BUSY:
                self._leaving.add(login)
            else:
                self._disconnect(login)
        elif kind == "disconnect":
            self._disconnect(login)
        # "look": nothing happens; the clock stops there so the loop sees the day end on time.

    def _answer(self, call_id: str, login: str) -> None:
        del self._answerer[call_id]
        self._ringing.pop(call_id, None)
        call = self.calls[call_id]
        self._routed(self.router.answered(call_id, login, self.now))
        card = self.tenant.rate_cards.get(call.client_id)
        tier = card.tier_for(call.talk_s) if card is not None else None
        self._finish(call_id, "answered", agent=login, earned=tier.rate if tier is not None else Decimal(0))
        self._push(self.now + timedelta(seconds=call.talk_s), "end", call_id, login)

    def _make_available(self, login: str) -> None:
        # Refused on a slot too short to be offered anything (within `last_offer_before_end_s` of its end).
        with contextlib.suppress(RouterError):
            self._routed(self.router.set_available(login, self.now))

    def _disconnect(self, login: str) -> None:
        self._leaving.discard(login)
        if login in self._connected_at:
            self._routed(self.router.disconnect(login, self.now))
            self._end_session(login)

    def _end_session(self, login: str) -> None:
        self.sessions[login].append(Interval(self._connected_at.pop(login), self.now))

    def _close(self) -> None:
        """Whoever still waits hangs up: nobody is left to answer, or the drain limit is reached."""
        for call_id in sorted(self.router.callers):
            if call_id in self.router.callers:
                self._apply(self.router.hang_up(call_id, self.now))
                self._finish(call_id, "abandoned", reason="closed")

    # ---- actions ------------------------------------------------------------------------------

    def _routed(self, actions: list[Action]) -> None:
        """Actions of a router event that steps before it returns."""
        self._apply(actions)
        self._stepped = True

    def _apply(self, actions: list[Action]) -> None:
        sent: list[SendToFallback] = []
        for action in actions:
            if isinstance(action, Offer):
                self._ringing[action.call_id] = list(action.agents)
                # ring_all: the first of the group answers; the router cancels the others.
                self._expect(action.call_id, action.agents[0], self.now + self.answer_after)
            elif isinstance(action, CancelOffer):
                self._cancelled(action.call_id, action.agent)
            elif isinstance(action, AgentChanged):
                self._state(action.login, action.state)
            elif isinstance(action, SendToFallback):
                sent.append(action)
        for action in sent:
            # A fallback to another queue keeps the caller in the router; any other lets them go.
            call_id = action.call_id
            if call_id not in self.router.callers and call_id not in self.router.live and call_id not in self.outcomes:
                self._finish(call_id, "fallback", reason=action.reason)

    def _expect(self, call_id: str, login: str, at: datetime) -> None:
        self._answerer[call_id] = (login, self._push(at, "answer", call_id, login), at)

    def _cancelled(self, call_id: str, login: str) -> None:
        ringing = self._ringing.get(call_id, [])
        if login in ringing:
            ringing.remove(login)
        if not ringing:
            self._ringing.pop(call_id, None)
        expected = self._answerer.get(call_id)
        if expected is not None and expected[0] == login:
            del self._answerer[call_id]
            if ringing:
                # The answering agent left (disconnected): another of the group answers instead.
                self._expect(call_id, ringing[0], max(expected[2], self.now))

    def _state_of(self, login: str) -> str:
        return self._states[login][0] if login in self._states else "logged_out"

    def _state(self, login: str, state: str) -> None:
        previous, since = self._states.get(login, ("logged_out", self.now))
        if previous == "wrap_up":
            self.wrap_up_s[login] += (self.now - since).total_seconds()
        self._states[login] = (state, self.now)
        if login in self._leaving and state not in _BUSY:
            self._leaving.discard(login)
            self._push(self.now, "disconnect", "", login)

    def _finish(
        self,
        call_id: str,
        outcome: str,
        *,
        agent: str | None = None,
        earned: Decimal = Decimal(0),
        reason: str | None = None,
    ) -> None:
        call = self.calls[call_id]
        self.outcomes[call_id] = CallOutcome(
            call_id,
            call.client_id,
            self.queue_of[call_id],
            call.at,
            outcome,
            (self.now - call.at).total_seconds(),
            agent=agent,
            talk_s=call.talk_s if outcome == "answered" else 0.0,
            earned=earned,
            reason=reason,
        )


# ---- the figures ------------------------------------------------------------------------------


def _result(floor: _Floor, within_s: float) -> DayResult:
    outcomes = tuple(floor.outcomes[call_id] for call_id in sorted(floor.outcomes))
    answer_after_s = floor.answer_after.total_seconds()
    queue_stats = []
    for queue in floor.router.queues.values():
        mine = [o for o in outcomes if o.queue_id == queue.id]
        erlang_figures = _erlang(floor, queue, mine, within_s, answer_after_s)
        queue_stats.append(_traffic(queue.id, queue.client_id, mine, within_s, erlang_figures))
    client_stats = [
        _traffic(client_id, client_id, [o for o in outcomes if o.client_id == client_id], within_s, None)
        for client_id in sorted({q.client_id for q in floor.router.queues.values()})
    ]
    agents = tuple(_agent(floor, login, outcomes) for login in sorted(floor.tenant.agents))
    worked = [float(a.earned_total) for a in agents if a.logged_in_s > 0]
    return DayResult(
        floor.start,
        floor.end,
        floor.now,
        within_s,
        outcomes,
        tuple(queue_stats),
        tuple(client_stats),
        agents,
        gini(worked),
    )


def _traffic(
    name: str, client_id: str, outcomes: Sequence[CallOutcome], within_s: float, erlang_figures: ErlangFigures | None
) -> TrafficStats:
    answered = [o for o in outcomes if o.outcome == "answered"]
    abandoned = [o for o in outcomes if o.outcome == "abandoned"]
    answered_within = sum(1 for o in answered if o.wait_s <= within_s)
    abandoned_within = sum(1 for o in abandoned if o.wait_s <= within_s)
    counted = len(answered) + len(abandoned) - abandoned_within
    return TrafficStats(
        name=name,
        client_id=client_id,
        offered=len(outcomes),
        answered=len(answered),
        abandoned=len(abandoned),
        fallback=sum(1 for o in outcomes if o.outcome == "fallback"),
        answered_within=answered_within,
        abandoned_within=abandoned_within,
        service_level=answered_within / counted if counted else None,
        asa_s=sum(o.wait_s for o in answered) / len(answered) if answered else None,
        abandonment_rate=len(abandoned) / len(outcomes) if outcomes else None,
        erlang=erlang_figures,
    )


def _erlang(
    floor: _Floor, queue: QueueConfig, outcomes: Sequence[CallOutcome], within_s: float, answer_after_s: float
) -> ErlangFigures | None:
    if len(outcomes) < 2:
        return None
    first = min(o.arrived_at for o in outcomes)
    last = max(o.arrived_at for o in outcomes)
    span_s = (last - first).total_seconds()
    if span_s <= 0:
        return None
    arrivals_per_s = len(outcomes) / span_s
    mean_talk_s = sum(floor.calls[o.call_id].talk_s for o in outcomes) / len(outcomes)
    wrap_s = floor.router.timers_for(queue.client_id).wrap_up_s
    handle_s = mean_talk_s + wrap_s + answer_after_s
    load = erlang.offered_load(arrivals_per_s, handle_s)
    staffed = _staffed_s(floor, queue.client_id, Interval(first, last)) / span_s
    agents = math.floor(staffed + 0.5)
    level: float | None = None
    asa: float | None = None
    if load < agents:
        # The offer comes answer_after_s before the answer: Erlang's wait is the wait for the offer.
        level = (
            erlang.service_level(agents, load, handle_s, within_s - answer_after_s)
            if within_s >= answer_after_s
            else 0.0
        )
        asa = erlang.average_speed_of_answer(agents, load, handle_s) + answer_after_s
    return ErlangFigures(arrivals_per_s * 3600.0, handle_s, load, staffed, agents, level, asa)


def _staffed_s(floor: _Floor, client_id: str, window: Interval) -> float:
    """Agent-seconds within `window` of agents logged in on a slot covering `client_id`."""
    total = 0.0
    for login, slots in floor.slots.items():
        covering = _merged([Interval(s.start, s.end) for s in slots if client_id in s.clients])
        for session in floor.sessions.get(login, []):
            for iv in covering:
                begin = max(session.start, iv.start, window.start)
                finish = min(session.end, iv.end, window.end)
                total += max(0.0, (finish - begin).total_seconds())
    return total


def _merged(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: i.start):
        if merged and iv.start <= merged[-1].end:
            merged[-1] = Interval(merged[-1].start, max(merged[-1].end, iv.end))
        else:
            merged.append(iv)
    return merged


def _agent(floor: _Floor, login: str, outcomes: Sequence[CallOutcome]) -> AgentStats:
    mine = [o for o in outcomes if o.agent == login]
    logged_in_s = sum(s.seconds for s in floor.sessions.get(login, []))
    talk_s = sum(o.talk_s for o in mine)
    wrap_s = floor.wrap_up_s.get(login, 0.0)
    earned: dict[str, Decimal] = {}
    for outcome in mine:
        card = floor.tenant.rate_cards.get(outcome.client_id)
        if card is not None:
            earned[card.currency] = earned.get(card.currency, Decimal(0)) + outcome.earned
    return AgentStats(
        login,
        logged_in_s,
        len(mine),
        talk_s,
        wrap_s,
        (talk_s + wrap_s) / logged_in_s if logged_in_s > 0 else None,
        dict(sorted(earned.items())),
    )


def gini(values: Sequence[float]) -> float:
    """The Gini coefficient: 0 when all are equal (or all zero, or none), towards 1 as one takes everything."""
    total = sum(values)
    if not values or total <= 0:
        return 0.0
    ordered = sorted(values)
    n = len(ordered)
    # The mean absolute difference over twice the mean, from the sorted values in one pass.
    weighted = sum((2 * (i + 1) - n - 1) * x for i, x in enumerate(ordered))
    return weighted / (n * total)
