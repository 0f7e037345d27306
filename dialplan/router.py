"""The queue engine: which caller is offered to which agent, and when.

A pure state machine. Events come in as method calls, each with the
instant it happened (`now`); decisions come out as actions for the caller
of the router to carry out: the live dispatcher rings browsers and plays
announcements, the simulator advances a virtual clock. Nothing here reads
a clock or does I/O, so a day of calls replays in a second and every rule
is testable on its own.

The rules, in one place:

- A caller joins a queue unless it is full or nobody could serve it
  (`join_unless`); otherwise they go to the queue's fallback.
- Callers are served by priority, then by how long they have waited
  overall (across fallbacks), weighted by their queue's weight; a tie goes
  to the earlier arrival. Within a queue that is priority, then FIFO.
- A caller is offered to the agents eligible for them, in the order the
  queue's strategy gives: available, connected, not resting after a
  declined, missed or busy offer, not ringing for another call, on a slot
  that covers the client and doesn't end within `last_offer_before_end_s`,
  serving the client at a level the caller's wait has reached.
- An agent rings for one call at a time; ring_all rings several agents
  for one call, and the first answer cancels the others.
- After a call the agent wraps up for their client's `wrap_up_s`; the
  wrap-up holds across every queue they belong to (app_queue's known gap).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from dialplan.offers import REOFFER_AFTER_S
from dialplan.queues import Absence, AgentTimers, Fallback, FallbackKind, QueueConfig, ShiftRules
from dialplan.shifts import current_slots, upcoming_slots
from dialplan.strategies import Standing, rank
from dialplan.tenant import Tenant

# A caller who lost their agent mid-call goes back ahead of everyone else.
REQUEUE_PRIORITY = 1_000_000
# Fallbacks to other queues chain at most this deep; past it, the caller is hung up on.
MAX_FALLBACK_HOPS = 4
# Two announcements to one caller start at least this far apart, so they never overlap.
ANNOUNCEMENT_GAP_S = 10.0


class RouterError(ValueError):
    """An event the router can't accept: it names what is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---- actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    call_id: str
    queue_id: str
    agents: tuple[str, ...]
    ring_timeout_s: float
    whisper: str | None = None


@dataclass(frozen=True)
class CancelOffer:
    call_id: str
    agent: str
    # timeout | answered_elsewhere | caller_left | agent_gone | fallback
    reason: str


@dataclass(frozen=True)
class Announce:
    call_id: str
    # position | periodic
    kind: str
    position: int | None = None
    wait_s: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class SendToFallback:
    call_id: str
    queue_id: str
    fallback: Fallback
    # queue_full | no_agents | max_wait | left_empty | too_many_hops
    reason: str


@dataclass(frozen=True)
class AgentChanged:
    login: str
    state: str
    reason: str | None = None


@dataclass(frozen=True)
class NoShow:
    login: str
    slot_start: datetime


Action = Offer | CancelOffer | Announce | SendToFallback | AgentChanged | NoShow


# ---- state --------------------------------------------------------------------------------


@dataclass
class Caller:
    call_id: str
    queue_id: str
    priority: int
    arrived_at: datetime  # first arrival, kept across fallbacks
    joined_at: datetime  # this queue
    seq: int
    ringing: set[str] = field(default_factory=set)
    ring_deadline: datetime | None = None
    passed: dict[str, datetime] = field(default_factory=dict)
    hops: int = 0
    last_announced: datetime | None = None
    next_position_at: datetime | None = None
    next_periodic_at: datetime | None = None


@dataclass
class AgentFloor:
    login: str
    state: str = "logged_out"
    reason: str | None = None
    connected: bool = False
    idle_since: datetime | None = None
    rest_until: datetime | None = None
    wrap_up_until: datetime | None = None
    offer: str | None = None
    call: str | None = None
    missed_in_row: int = 0
    day: date | None = None
    calls_today: int = 0
    talk_s_today: float = 0.0
    earned_today: Decimal = Decimal(0)
    # Connected stretches of the last day, [start, end or None while connected]: for no-shows.
    sessions: list[tuple[datetime, datetime | None]] = field(default_factory=list)


@dataclass(frozen=True)
class _SlotWindow:
    since: datetime
    until: datetime
    running: tuple[tuple[frozenset[str], datetime], ...]


@dataclass(frozen=True)
class LiveCall:
    """An answered call: what the router needs if its agent is lost, and for the wrap-up."""

    call_id: str
    queue_id: str
    agent: str
    arrived_at: datetime


class Router:
    def __init__(
        self,
        tenant: Tenant,
        queues: Iterable[QueueConfig],
        *,
        timers: Mapping[str, AgentTimers] | None = None,
        shift_rules: ShiftRules | None = None,
        seed: int = 0,
    ) -> None:
        self.tenant = tenant
        self.queues = {q.id: q for q in queues}
        for queue in self.queues.values():
            if queue.client_id not in tenant.clients:
                raise RouterError("bad_config", f"queue {queue.id!r}: unknown client {queue.client_id!r}")
        self.timers = dict(timers or {})
        self.shift_rules = shift_rules or ShiftRules()
        # Reproducible draws for the random strategy, not secrets.
        self.rng = random.Random(seed)  # noqa: S311
        self.callers: dict[str, Caller] = {}
        self.agents: dict[str, AgentFloor] = {login: AgentFloor(login) for login in tenant.agents}
        self.live: dict[str, LiveCall] = {}
        self._by_queue: dict[str, dict[str, Caller]] = {}
        # The earliest instant a waiting caller may have a timer or announcement due (None: unknown).
        self._wake_at: datetime | None = None
        # Per agent: their running slots (clients, end) and the span in which that list holds.
        self._slot_cache: dict[str, _SlotWindow] = {}
        self._queues_of_client: dict[str, tuple[str, ...]] = {
            client_id: tuple(q.id for q in self.queues.values() if q.client_id == client_id)
            for client_id in tenant.clients
        }
        self._deepest_level: dict[str, int] = {
            client_id: max((lvl for a in tenant.agents.values() if (lvl := a.level_for(client_id))), default=1)
            for client_id in tenant.clients
        }
        self._members: dict[str, tuple[str, ...]] = {
            client_id: tuple(sorted(login for login, a in tenant.agents.items() if a.level_for(client_id) is not None))
            for client_id in tenant.clients
        }
        # Within one step: whether every agent of a queue is absent, by (queue, reasons).
        self._last_offered: dict[str, str] = {}
        self._seq = itertools.count()
        self._no_shows: set[tuple[str, datetime]] = set()

    # ---- queries --------------------------------------------------------------------------

    def timers_for(self, client_id: str) -> AgentTimers:
        found = self.timers.get(client_id)
        if found is not None:
            return found
        client = self.tenant.clients.get(client_id)
        return client.timers if client is not None else AgentTimers()

    def waiting(self, queue_id: str) -> list[str]:
        """The queue's callers in the order they are served."""
        return [c.call_id for c in sorted(self._in_queue(queue_id), key=_fifo)]

    def position(self, call_id: str) -> int | None:
        caller = self.callers.get(call_id)
        if caller is None:
            return None
        return self.waiting(caller.queue_id).index(call_id) + 1

    def next_deadline(self, now: datetime) -> datetime | None:
        """The next instant after `now` at which `step` may have something to do without a new event.

        Slot starts and ends are not included: call `step` at least every minute for those.
        """
        instants: list[datetime] = []
        for caller in self.callers.values():
            queue = self.queues[caller.queue_id]
            instants.extend(self._timer_instants(caller))
            if queue.tier_delay_s > 0:
                # The next level of agents becomes eligible, if the client has agents at that level.
                reached = (now - caller.arrived_at).total_seconds() // queue.tier_delay_s + 1
                if reached < self._deepest_level.get(queue.client_id, 1):
                    instants.append(caller.arrived_at + timedelta(seconds=reached * queue.tier_delay_s))
            instants.extend(at + timedelta(seconds=REOFFER_AFTER_S) for at in caller.passed.values())
        for agent in self.agents.values():
            instants.extend(t for t in (agent.wrap_up_until, agent.rest_until) if t is not None)
        later = [t for t in instants if t > now]
        return min(later) if later else None

    # ---- agents ---------------------------------------------------------------------------

    def connect(self, login: str, now: datetime) -> list[Action]:
        agent = self._agent(login)
        if not agent.connected:
            day_ago = now - timedelta(days=1)
            agent.sessions = [(a, b) for a, b in agent.sessions if b is None or b > day_ago]
            agent.sessions.append((now, None))
        agent.connected = True
        actions: list[Action] = []
        if agent.state == "logged_out":
            actions += self._set(agent, "paused", "signed in", now)
        return actions + self.step(now)

    def disconnect(self, login: str, now: datetime) -> list[Action]:
        """The agent's page is gone: a ringing offer goes to the next agent at once."""
        agent = self._agent(login)
        if agent.connected and agent.sessions:
            agent.sessions[-1] = (agent.sessions[-1][0], now)
        agent.connected = False
        actions: list[Action] = []
        if agent.offer is not None:
            actions += self._withdraw(agent, "agent_gone", now)
        if agent.state in ("available", "wrap_up", "paused"):
            actions += self._set(agent, "paused", "disconnected", now)
        return actions + self.step(now)

    def set_available(self, login: str, now: datetime) -> list[Action]:
        agent = self._agent(login)
        if not agent.connected:
            raise RouterError("not_connected", "Connect the softphone first.")
        if agent.state in ("ringing", "on_call"):
            raise RouterError("busy", "Finish the current call first.")
        if not self._slot_clients(login, now, offering=False):
            raise RouterError("not_on_shift", "You are not on shift.")
        agent.missed_in_row = 0
        agent.wrap_up_until = None
        actions = self._set(agent, "available", None, now)
        agent.idle_since = now
        return actions + self.step(now)

    def pause(self, login: str, reason: str, now: datetime) -> list[Action]:
        agent = self._agent(login)
        if agent.state in ("ringing", "on_call"):
            raise RouterError("busy", "Finish the current call first.")
        return self._set(agent, "paused", reason, now)

    # ---- callers --------------------------------------------------------------------------

    def arrive(self, call_id: str, queue_id: str, now: datetime, *, priority: int = 0) -> list[Action]:
        if call_id in self.callers:
            raise RouterError("duplicate_call", f"call {call_id!r} is already queued")
        queue = self.queues.get(queue_id)
        if queue is None:
            raise RouterError("unknown_queue", f"no queue {queue_id!r}")
        caller = Caller(call_id, queue_id, priority, now, now, next(self._seq))
        return self._join(caller, queue, now) + self.step(now)

    def hang_up(self, call_id: str, now: datetime) -> list[Action]:
        """The caller left while waiting or ringing (abandoned)."""
        caller = self._drop_caller(call_id)
        if caller is None:
            return []
        actions: list[Action] = []
        for login in sorted(caller.ringing):
            actions += self._release(self.agents[login], call_id, "caller_left", now)
        return actions + self.step(now)

    # ---- offers ---------------------------------------------------------------------------

    def answered(self, call_id: str, login: str, now: datetime) -> list[Action]:
        caller = self.callers.get(call_id)
        agent = self._agent(login)
        if caller is None or login not in caller.ringing or agent.offer != call_id:
            raise RouterError("no_such_offer", f"{login} is not ringing for {call_id}")
        self._drop_caller(call_id)
        actions: list[Action] = []
        for other in sorted(caller.ringing - {login}):
            actions += self._release(self.agents[other], call_id, "answered_elsewhere", now)
        agent.offer = None
        agent.call = call_id
        agent.missed_in_row = 0
        self.live[call_id] = LiveCall(call_id, caller.queue_id, login, caller.arrived_at)
        # A step too: the rest of a ring_all group is free again, for the next caller.
        return actions + self._set(agent, "on_call", None, now) + self.step(now)

    def declined(self, call_id: str, login: str, now: datetime) -> list[Action]:
        agent = self._ringing(call_id, login)
        timers = self.timers_for(self.queues[self.callers[call_id].queue_id].client_id)
        actions = self._withdraw(agent, "declined", now)
        agent.rest_until = now + timedelta(seconds=timers.reject_delay_s)
        return actions + self.step(now)

    def busy(self, call_id: str, login: str, now: datetime) -> list[Action]:
        """The agent could not be rung (their softphone said busy, or another node holds them)."""
        agent = self._ringing(call_id, login)
        timers = self.timers_for(self.queues[self.callers[call_id].queue_id].client_id)
        actions = self._withdraw(agent, "busy", now)
        agent.rest_until = now + timedelta(seconds=timers.busy_delay_s)
        return actions + self.step(now)

    # ---- calls ----------------------------------------------------------------------------

    def call_ended(
        self, call_id: str, login: str, now: datetime, *, talk_s: float, earned: Decimal = Decimal(0)
    ) -> list[Action]:
        agent = self._agent(login)
        live = self.live.get(call_id)
        if agent.call != call_id or live is None:
            raise RouterError("no_such_call", f"{login} is not on {call_id}")
        del self.live[call_id]
        client_id = self.queues[live.queue_id].client_id
        agent.call = None
        self._count_day(agent, now)
        agent.calls_today += 1
        agent.talk_s_today += talk_s
        agent.earned_today += earned
        wrap = self.timers_for(client_id).wrap_up_s
        if wrap > 0:
            agent.wrap_up_until = now + timedelta(seconds=wrap)
            actions = self._set(agent, "wrap_up", None, now)
        else:
            actions = self._back_from_call(agent, now)
        return actions + self.step(now)

    def _back_from_call(self, agent: AgentFloor, now: datetime) -> list[Action]:
        """After a call and its wrap-up: available, unless the page went away meanwhile.

        An agent whose page closed during the call comes back paused: ringing a
        softphone that just reconnected, before its agent chose to take calls, would
        surprise them (and the dispatcher pauses such agents the same way).
        """
        if not agent.connected:
            return self._set(agent, "paused", "disconnected", now)
        agent.idle_since = now
        return self._set(agent, "available", None, now)

    def agent_lost(self, call_id: str, now: datetime) -> list[Action]:
        """The agent vanished mid-call: the caller goes back to the front of their queue."""
        live = self.live.pop(call_id, None)
        if live is None:
            raise RouterError("no_such_call", f"no answered call {call_id!r}")
        login = live.agent
        agent = self._agent(login)
        agent.call = None
        actions = self._set(agent, "paused", "disconnected", now)
        caller = Caller(call_id, live.queue_id, REQUEUE_PRIORITY, live.arrived_at, now, next(self._seq))
        caller.passed[login] = now
        self._put_caller(caller)
        return actions + self.step(now)

    # ---- time -----------------------------------------------------------------------------

    def step(self, now: datetime) -> list[Action]:
        """Everything due by `now`: timers, shift ends, fallbacks, announcements, then new offers."""
        actions: list[Action] = []
        for agent in self.agents.values():
            actions += self._agent_timers(agent, now)
        # Only callers with something due are looked at (and sorted): a big floor has thousands waiting.
        emptied = {q.id for q in self.queues.values() if q.leave_when and self._all_absent(q, q.leave_when, now)}
        # Callers are scanned only when one of them may have something due by now.
        scan = bool(emptied) or self._wake_at is None or self._wake_at <= now
        due = [c for c in self.callers.values() if c.queue_id in emptied or self._timer_due(c, now)] if scan else []
        released: list[Action] = []
        for caller in sorted(due, key=_fifo):
            released += self._caller_timers(caller, now)
        actions += released
        # Once more for the agents those rings released: their slot may have ended meanwhile
        # ("end of shift" is due now, not at the next step). The first pass stays first, so
        # `leave_when` sees ended wrap-ups.
        for login in sorted({a.agent for a in released if isinstance(a, CancelOffer)}):
            actions += self._agent_timers(self.agents[login], now)
        actions += self._offer(now)
        if scan:
            announcing = [c for c in self.callers.values() if not c.ringing and self._announcement_due(c, now)]
            for caller in sorted(announcing, key=_fifo):
                actions += self._announce(caller, now)
            self._wake_at = None
            for caller in self.callers.values():
                self._note_wake(caller)
        return actions

    def _timer_instants(self, caller: Caller) -> list[datetime]:
        """When the caller's ring times out, their max wait runs out, and their next announcements are due."""
        times = [] if caller.ring_deadline is None else [caller.ring_deadline]
        max_wait = self.queues[caller.queue_id].max_wait_s
        if max_wait is not None:
            times.append(caller.joined_at + timedelta(seconds=max_wait))
        gap_end = caller.last_announced + timedelta(seconds=ANNOUNCEMENT_GAP_S) if caller.last_announced else None
        for announcement in (caller.next_position_at, caller.next_periodic_at):
            if announcement is not None:
                times.append(max(announcement, gap_end) if gap_end is not None else announcement)
        return times

    def _note_wake(self, caller: Caller) -> None:
        """Keep `_wake_at` at or before the caller's next ring timeout, max wait or announcement."""
        for t in self._timer_instants(caller):
            if self._wake_at is None or t < self._wake_at:
                self._wake_at = t

    def _timer_due(self, caller: Caller, now: datetime) -> bool:
        max_wait = self.queues[caller.queue_id].max_wait_s
        return (caller.ring_deadline is not None and caller.ring_deadline <= now) or (
            max_wait is not None and (now - caller.joined_at).total_seconds() >= max_wait
        )

    def _announcement_due(self, caller: Caller, now: datetime) -> bool:
        return any(t is not None and t <= now for t in (caller.next_position_at, caller.next_periodic_at))

    def no_shows(self, now: datetime) -> list[Action]:
        """Slots whose agent hasn't connected `no_show_after_s` after they started; each reported once."""
        actions: list[Action] = []
        late = timedelta(seconds=self.shift_rules.no_show_after_s)
        for login, agent in self.agents.items():
            for slot in current_slots(self.tenant, login, now):
                key = (login, slot.start)
                if now - slot.start < late or key in self._no_shows:
                    continue
                deadline = slot.start + late
                # Connected at any moment between the slot's start and the deadline: present.
                if any(a <= deadline and (b is None or b >= slot.start) for a, b in agent.sessions):
                    continue
                self._no_shows.add(key)
                actions.append(NoShow(login, slot.start))
        return actions

    # ---- internals ------------------------------------------------------------------------

    def _agent(self, login: str) -> AgentFloor:
        agent = self.agents.get(login)
        if agent is None:
            raise RouterError("unknown_agent", f"no agent {login!r}")
        return agent

    def _ringing(self, call_id: str, login: str) -> AgentFloor:
        agent = self._agent(login)
        caller = self.callers.get(call_id)
        if caller is None or login not in caller.ringing or agent.offer != call_id:
            raise RouterError("no_such_offer", f"{login} is not ringing for {call_id}")
        return agent

    def _set(self, agent: AgentFloor, state: str, reason: str | None, now: datetime) -> list[Action]:
        if (agent.state, agent.reason) == (state, reason):
            return []
        agent.state, agent.reason = state, reason
        return [AgentChanged(agent.login, state, reason)]

    def _count_day(self, agent: AgentFloor, now: datetime) -> None:
        # "Today" is the UTC day: earnings and call counts start over at midnight UTC.
        if agent.day != now.date():
            agent.day = now.date()
            agent.calls_today, agent.talk_s_today, agent.earned_today = 0, 0.0, Decimal(0)

    def _in_queue(self, queue_id: str) -> list[Caller]:
        return list(self._by_queue.get(queue_id, {}).values())

    def _put_caller(self, caller: Caller) -> None:
        self.callers[caller.call_id] = caller
        self._by_queue.setdefault(caller.queue_id, {})[caller.call_id] = caller
        self._note_wake(caller)

    def _drop_caller(self, call_id: str) -> Caller | None:
        caller = self.callers.pop(call_id, None)
        if caller is not None:
            self._by_queue[caller.queue_id].pop(call_id, None)
        return caller

    def _join(self, caller: Caller, queue: QueueConfig, now: datetime) -> list[Action]:
        if queue.max_length is not None and len(self._in_queue(queue.id)) >= queue.max_length:
            return self._to_fallback(caller, queue, "queue_full", now)
        if queue.join_unless and self._all_absent(queue, queue.join_unless, now):
            return self._to_fallback(caller, queue, "no_agents", now)
        caller.queue_id, caller.joined_at = queue.id, now
        caller.next_position_at = now if queue.announcements.position else None
        every = queue.announcements.periodic_every_s
        caller.next_periodic_at = (
            now + timedelta(seconds=every) if every and queue.announcements.periodic_message else None
        )
        self._put_caller(caller)
        return []

    def _to_fallback(self, caller: Caller, queue: QueueConfig, reason: str, now: datetime) -> list[Action]:
        self._drop_caller(caller.call_id)
        actions: list[Action] = []
        for login in sorted(caller.ringing):
            actions += self._release(self.agents[login], caller.call_id, "fallback", now)
        # The caller is out of `callers` already, so `_release` could not stop them ringing: do it
        # here, or they join the next queue still "ringing" with a stale deadline, are never offered
        # there, and that deadline later "misses" whatever their old agent rings for (or trips the
        # assert in `_missed` once the agent rings for nothing).
        caller.ringing.clear()
        caller.ring_deadline = None
        fallback = queue.fallback
        if fallback.kind is FallbackKind.QUEUE and fallback.target in self.queues:
            if caller.hops >= MAX_FALLBACK_HOPS:
                return [*actions, SendToFallback(caller.call_id, queue.id, Fallback(), "too_many_hops")]
            actions.append(SendToFallback(caller.call_id, queue.id, fallback, reason))
            caller.hops += 1
            caller.passed.clear()
            return actions + self._join(caller, self.queues[fallback.target], now)
        return [*actions, SendToFallback(caller.call_id, queue.id, fallback, reason)]

    def _absences(self, login: str, client_id: str, now: datetime) -> set[Absence]:
        agent = self.agents[login]
        found: set[Absence] = set()
        if client_id not in self._slot_clients(login, now):
            found.add(Absence.OFF_SHIFT)
        if not agent.connected or agent.state == "logged_out":
            found.add(Absence.UNAVAILABLE)
        if agent.state == "paused":
            found.add(Absence.PAUSED)
        if agent.state == "wrap_up":
            found.add(Absence.WRAP_UP)
        if agent.state in ("ringing", "on_call"):
            found.add(Absence.IN_USE)
        return found

    def _all_absent(self, queue: QueueConfig, reasons: frozenset[Absence], now: datetime) -> bool:
        members = self._members.get(queue.client_id, ())
        return all(self._absences(login, queue.client_id, now) & reasons for login in members)

    def _slot_clients(self, login: str, now: datetime, *, offering: bool = True) -> frozenset[str]:
        """Clients the agent's running slots cover; `offering`: only slots not within
        `last_offer_before_end_s` of their end (no new offers then, but the agent is still on shift)."""
        window = self._slot_cache.get(login)
        if window is None or not window.since <= now < window.until:
            window = self._slot_window(login, now)
            self._slot_cache[login] = window
        margin = timedelta(seconds=self.shift_rules.last_offer_before_end_s if offering else 0)
        clients: set[str] = set()
        for slot_clients, end in window.running:
            if end - now > margin:
                clients |= slot_clients
        return frozenset(clients)

    def _slot_window(self, login: str, now: datetime) -> _SlotWindow:
        # Reading calendars is the costly part of routing, so each agent's running slots are
        # read once and kept until one of them ends or another starts.
        slots = upcoming_slots(self.tenant, login, now, days=1)
        running = tuple((s.clients, s.end) for s in slots if s.start <= now < s.end)
        changes = [s.start for s in slots if s.start > now] + [end for _, end in running]
        return _SlotWindow(now, min(changes, default=now + timedelta(days=1)), running)

    def _agent_timers(self, agent: AgentFloor, now: datetime) -> list[Action]:
        actions: list[Action] = []
        if agent.state == "wrap_up" and agent.wrap_up_until is not None and agent.wrap_up_until <= now:
            agent.wrap_up_until = None
            actions += self._back_from_call(agent, now)
        if agent.rest_until is not None and agent.rest_until <= now:
            agent.rest_until = None
        if agent.state == "available" and not self._slot_clients(agent.login, now, offering=False):
            actions += self._set(agent, "paused", "end of shift", now)
        return actions

    def _caller_timers(self, caller: Caller, now: datetime) -> list[Action]:
        queue = self.queues[caller.queue_id]
        actions: list[Action] = []
        if caller.ring_deadline is not None and caller.ring_deadline <= now:
            for login in sorted(caller.ringing):
                actions += self._missed(self.agents[login], now)
            # No early return: a ring that timed out in the same step as the caller's max_wait
            # (or with every agent gone) must not keep them in the queue, to be offered anew
            # past their max_wait until some later step; `next_deadline` no longer reports it.
        if queue.max_wait_s is not None and (now - caller.joined_at).total_seconds() >= queue.max_wait_s:
            return actions + self._to_fallback(caller, queue, "max_wait", now)
        if queue.leave_when and not caller.ringing and self._all_absent(queue, queue.leave_when, now):
            return actions + self._to_fallback(caller, queue, "left_empty", now)
        return actions

    def _missed(self, agent: AgentFloor, now: datetime) -> list[Action]:
        call_id = agent.offer
        assert call_id is not None
        timers = self.timers_for(self.queues[self.callers[call_id].queue_id].client_id)
        actions = self._withdraw(agent, "timeout", now)
        agent.missed_in_row += 1
        if timers.max_no_answer and agent.missed_in_row >= timers.max_no_answer:
            actions += self._set(agent, "paused", "missed calls", now)
        else:
            agent.rest_until = now + timedelta(seconds=timers.no_answer_delay_s)
        return actions

    def _withdraw(self, agent: AgentFloor, reason: str, now: datetime) -> list[Action]:
        """Stop `agent` ringing; the caller keeps waiting and remembers who passed."""
        call_id = agent.offer
        assert call_id is not None
        caller = self.callers[call_id]
        caller.passed[agent.login] = now
        return self._release(agent, call_id, reason, now)

    def _release(self, agent: AgentFloor, call_id: str, reason: str, now: datetime) -> list[Action]:
        caller = self.callers.get(call_id)
        if caller is not None:
            caller.ringing.discard(agent.login)
            if not caller.ringing:
                caller.ring_deadline = None
        agent.offer = None
        actions: list[Action] = [CancelOffer(call_id, agent.login, reason)]
        if agent.state == "ringing":
            if agent.connected:
                actions += self._set(agent, "available", None, now)
            else:
                actions += self._set(agent, "paused", "disconnected", now)
        return actions

    def _eligible(self, caller: Caller, queue: QueueConfig, now: datetime, free: Iterable[str]) -> list[Standing]:
        """Of the free agents on a slot covering the queue's client: those this caller may be offered to now."""
        waited = (now - caller.arrived_at).total_seconds()
        reached = 1 + (int(waited // queue.tier_delay_s) if queue.tier_delay_s > 0 else 10**6)
        reoffer = now - timedelta(seconds=REOFFER_AFTER_S)
        found: list[Standing] = []
        for login in free:
            agent = self.agents[login]
            level = self.tenant.agents[login].level_for(queue.client_id)
            if level is None or level > reached:
                continue
            if caller.passed.get(login, reoffer) > reoffer:
                continue
            self._count_day(agent, now)
            found.append(
                Standing(login, agent.idle_since or now, agent.calls_today, agent.talk_s_today, agent.earned_today)
            )
        return found

    def _offer(self, now: datetime) -> list[Action]:
        # Free agents by the clients their running slots cover: a caller looks only at its client's.
        free: dict[str, set[str]] = {}
        for login, agent in self.agents.items():
            if (
                agent.state == "available"
                and agent.connected
                and agent.offer is None
                and (agent.rest_until is None or agent.rest_until <= now)
            ):
                for client_id in self._slot_clients(login, now):
                    free.setdefault(client_id, set()).add(login)
        actions: list[Action] = []
        waiting = [
            caller
            for client_id, logins in free.items()
            if logins
            for queue_id in self._queues_of_client.get(client_id, ())
            for caller in self._by_queue.get(queue_id, {}).values()
            if not caller.ringing
        ]
        for caller in sorted(waiting, key=lambda c: self._urgency(c, now)):
            queue = self.queues[caller.queue_id]
            candidates = free.get(queue.client_id)
            if not candidates:
                continue
            standings = self._eligible(caller, queue, now, sorted(candidates))
            groups = rank(queue, standings, last_offered=self._last_offered.get(queue.id), rng=self.rng)
            if not groups:
                continue
            group = groups[0]
            caller.ringing = set(group)
            caller.ring_deadline = now + timedelta(seconds=queue.ring_timeout_s)
            self._note_wake(caller)
            self._last_offered[queue.id] = group[-1]
            for login in group:
                agent = self.agents[login]
                agent.offer = caller.call_id
                actions += self._set(agent, "ringing", None, now)
                for logins in free.values():
                    logins.discard(login)
            actions.append(
                Offer(caller.call_id, queue.id, group, queue.ring_timeout_s, queue.announcements.agent_whisper)
            )
        return actions

    def _urgency(self, caller: Caller, now: datetime) -> tuple[int, float, int]:
        queue = self.queues[caller.queue_id]
        weighted_wait = (now - caller.arrived_at).total_seconds() * queue.weight
        return (-caller.priority, -weighted_wait, caller.seq)

    def _announce(self, caller: Caller, now: datetime) -> list[Action]:
        # Not while an agent rings: the answer would cut into it.
        if caller.ringing:
            return []
        if caller.last_announced is not None and now - caller.last_announced < timedelta(seconds=ANNOUNCEMENT_GAP_S):
            return []
        settings = self.queues[caller.queue_id].announcements
        if caller.next_position_at is not None and caller.next_position_at <= now:
            every = settings.position_every_s
            caller.next_position_at = now + timedelta(seconds=every) if every else None
            caller.last_announced = now
            return [Announce(caller.call_id, "position", position=self.position(caller.call_id))]
        if caller.next_periodic_at is not None and caller.next_periodic_at <= now:
            every = settings.periodic_every_s
            caller.next_periodic_at = now + timedelta(seconds=every) if every else None
            caller.last_announced = now
            return [Announce(caller.call_id, "periodic", message=settings.periodic_message)]
        return []


def _fifo(caller: Caller) -> tuple[int, datetime, int]:
    return (-caller.priority, caller.arrived_at, caller.seq)
