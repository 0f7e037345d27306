"""Agents and the calls offered to them, as the control process runs them.

The queue engine (`dialplan.router.Router`) decides who is offered which
call and when; the dispatcher feeds it what happens (pages connecting,
clicks, callers arriving and hanging up, the clock) and carries out what
it decides: it reserves agents in the live state, rings browsers, relays
the WebRTC offer to the worker that holds the call, has the worker play
announcements, and turns the agent's clicks into worker commands and
timeline events.

Agent states are mirrored into the live state, where a reservation is
atomic even with several nodes: an agent the router chose but another node
holds is reported back to the router as busy, and the call goes to the next
agent. Links, offers and timers live here, in this process.

Media never goes through here: the browser's peer connection ends in the
worker. The leg is negotiated while the phone rings, so answering only
connects audio in the worker's conference bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from dialplan.clock import Clock, iso_z
from dialplan.floor_stats import FloorStats
from dialplan.offers import RING_TIMEOUT_S, mask_number
from dialplan.overflow import EndPolicy, Overflow
from dialplan.pay import PaidCall, PayRules, price_call
from dialplan.prompts import position_prompt
from dialplan.queues import FallbackKind
from dialplan.router import Action, AgentChanged, Announce, CancelOffer, NoShow, Router, RouterError, SendToFallback
from dialplan.router import Offer as RouterOffer
from dialplan.shifts import shift_status, upcoming_slots
from dialplan.tenant import RecordingPolicy, Tenant
from dialplan.timeline import EventKind, TimelineEvent
from dialplan.wait_estimate import HandleTimes, estimated_wait_s
from store.live_state import AgentLive, LiveState
from telephony.call_recordings import CallRecordings, Capture

log = structlog.get_logger("telephony.dispatcher")

Message = dict[str, Any]
DTMF_DIGITS = re.compile(r"^[0-9*#A-Da-d]{1,32}$")
# The router wants a step at least this often, for slots that start or end and for no-shows.
TICK_S = 1.0
# After an event, the ticker waits this long for others before it looks at the deadlines again.
COALESCE_S = 0.05
# How often this node confirms its agents' open state spans (store.agent_states: a crash loses at most this).
STATE_CHECKPOINT_S = 30.0
# Said before hanging up on a caller whose queue's fallback has no message of its own,
# or whose fallback (voicemail, dialling the client's number) this bridge can't do yet.
DEFAULT_FALLBACK_MESSAGE = "We are sorry, nobody can take your call right now. Please call again later."
# What the browser is told when a ring stops, by the router's reason.
CANCEL_REASONS = {"caller_left": "caller_hung_up", "agent_gone": "disconnected"}


class AgentLink(Protocol):
    """One browser's WebSocket, as the dispatcher sees it."""

    def send(self, message: Message) -> None: ...

    async def close(self, reason: str) -> None: ...


class WorkerRequests(Protocol):
    async def request(self, index: int, kind: str, body: Message, timeout: float = 5.0) -> Message: ...


class Prompts(Protocol):
    async def speech(self, text: str) -> str | None:
        """A WAV file the workers can play that says `text`; None when speech is unavailable."""


class OverflowStates(Protocol):
    def current(self) -> Mapping[str, Overflow]: ...


class CallRecorder(Protocol):
    def record(self, call_id: str, events: Sequence[TimelineEvent]) -> None: ...

    def end_hint(self, call_id: str, by: str) -> None: ...


class AgentStates(Protocol):
    """Where the agents' state changes are kept, for occupancy (store.agent_states). Neither call blocks."""

    def changed(self, login: str, state: str, reason: str | None, at: datetime) -> None: ...

    def checkpoint(self, at: datetime) -> None: ...


class ProtocolError(ValueError):
    """A browser message we can't act on; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class QueuedCall:
    call_id: str
    worker: int
    leg: int
    client_id: str
    caller: str
    queued_at: datetime
    priority: int = 0
    # None: the queue named after the client (or its first).
    queue_id: str | None = None
    line_id: str | None = None


@dataclass
class Offer:
    call: QueuedCall
    agent: str
    rtc_id: str
    offered_at: datetime
    ring_timeout_s: float
    rtc_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # The queue's whisper for the agent, synthesised while the phone rings.
    whisper: asyncio.Task[str | None] | None = None


@dataclass
class LiveCall:
    call: QueuedCall
    agent: str
    rtc_id: str
    answered_at: datetime
    queue_id: str
    held: bool = False
    muted: bool = False
    media_ok: bool = True


@dataclass
class AgentRuntime:
    login: str
    link: AgentLink | None = None
    offer: Offer | None = None
    live: LiveCall | None = None
    grace: asyncio.Task[None] | None = None
    # The call whose wrap-up the agent is in, until it ends.
    wrapping: str | None = None
    # While True, state changes are not sent to the page (it hears the end result).
    muted_state: bool = False
    # Whether the last state sent to the page said "on shift".
    shown_on_shift: bool | None = None


@dataclass(frozen=True)
class DispatcherSettings:
    # None: each queue's own ring timeout; a number overrides every queue's.
    ring_timeout_s: float | None = None
    # A dropped WebSocket during a call has this long to come back.
    reconnect_grace_s: float = 10.0
    ice_servers: tuple[Mapping[str, Any], ...] = ()
    codec: str = "PCMU"
    # The zone plain-words shift explanations are written in.
    display_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    request_timeout_s: float = 5.0


class Dispatcher:
    def __init__(
        self,
        *,
        tenant: Tenant,
        live: LiveState,
        clock: Clock,
        workers: WorkerRequests,
        recorder: CallRecorder,
        settings: DispatcherSettings = DispatcherSettings(),
        prompts: Prompts | None = None,
        recordings: CallRecordings | None = None,
        states: AgentStates | None = None,
    ) -> None:
        self.tenant = tenant
        self.live = live
        self.clock = clock
        self.workers = workers
        self.recorder = recorder
        self.settings = settings
        self.prompts = prompts
        self.recordings = recordings
        self.states = states
        # Calls being recorded, by call id: a recording outlives an agent lost mid-call.
        self._captures: dict[str, Capture] = {}
        queues = list(tenant.all_queues.values())
        if settings.ring_timeout_s is not None:
            queues = [replace(q, ring_timeout_s=settings.ring_timeout_s) for q in queues]
        self.router = Router(tenant, queues, shift_rules=tenant.shift_rules)
        self._agents: dict[str, AgentRuntime] = {}
        # Calls the router holds (waiting or ringing), for what it doesn't keep: worker, leg, caller.
        self._calls: dict[str, QueuedCall] = {}
        # Per queue, recent talk plus wrap-up times: the announced wait is estimated from them.
        self._handle_times: dict[str, HandleTimes] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        # Set after each event: the ticker re-reads the router's next deadline.
        self._wake = asyncio.Event()
        # Today's outcomes per queue, and calls waiting over the last hour: the wallboard's figures.
        self.stats = FloorStats()
        # Slots whose agent didn't show up today, by agent: when each began.
        self.no_shows: dict[str, list[datetime]] = {}
        # Called (without arguments) after anything on the floor changed: the wallboard listens.
        self.watchers: list[Callable[[], None]] = []
        # The lines' weekend overflows as they stand: a window that ends may send waiting callers back.
        self.overflows: OverflowStates | None = None

    # ---- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self.states is not None:
            # The spans still open are closed at this instant when the node starts again.
            self.states.checkpoint(self.clock.now())
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        for runtime in self._agents.values():
            if runtime.grace is not None:
                runtime.grace.cancel()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _tick(self) -> None:
        """Step the router at its next deadline (ring timeouts, wrap-ups, announcements), soon after events
        that may have brought one closer, and every TICK_S for slots, no-shows and pages' shift news."""
        slow_at = checkpoint_at = 0.0
        while True:
            now = self.clock.now()
            deadline = self.router.next_deadline(now)
            wait = TICK_S if deadline is None else min(TICK_S, max(0.0, (deadline - now).total_seconds()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
                # A burst of events costs one look at the deadlines, not one each.
                await asyncio.sleep(COALESCE_S)
            except TimeoutError:
                pass
            try:
                if self.states is not None and self.clock.monotonic() - checkpoint_at >= STATE_CHECKPOINT_S:
                    checkpoint_at = self.clock.monotonic()
                    self.states.checkpoint(self.clock.now())
                await self.dispatch()
                if self.clock.monotonic() - slow_at >= TICK_S:
                    slow_at = self.clock.monotonic()
                    await self.follow_shifts()
            except Exception:
                log.exception("dispatch_tick_failed")

    # ---- the router ---------------------------------------------------------

    async def _route(self, event: Callable[[datetime], list[Action]]) -> None:
        """Feed the router one event and carry out its decisions. The caller holds the lock."""
        now = self.clock.now()
        pending: deque[Action] = deque(event(now))
        while pending:
            action = pending.popleft()
            if isinstance(action, RouterOffer):
                pending.extend(await self._ring(action, now))
            elif isinstance(action, CancelOffer):
                await self._cancel(action)
            elif isinstance(action, AgentChanged):
                await self._agent_changed(action)
            elif isinstance(action, Announce):
                self._announce(action)
            elif isinstance(action, SendToFallback):
                self._fallback(action)
            elif isinstance(action, NoShow):
                log.warning("agent_no_show", agent=action.login, slot_start=iso_z(action.slot_start))
                day = [at for at in self.no_shows.get(action.login, []) if at.date() == now.date()]
                self.no_shows[action.login] = [*day, action.slot_start]
        self._wake.set()
        self._changed()

    def _changed(self) -> None:
        for watcher in self.watchers:
            watcher()

    async def dispatch(self) -> None:
        """Everything due by now: timers, shift ends, announcements, new offers."""
        async with self._lock:
            await self._route(self.router.step)

    async def follow_shifts(self) -> None:
        """Slots that started without their agent (no-shows); pages hear when their agent's slot starts or ends."""
        async with self._lock:
            await self._route(self.router.no_shows)
            now = self.clock.now()
            waiting: dict[str, int] = {}
            for caller in self.router.callers.values():
                client_id = self.router.queues[caller.queue_id].client_id
                waiting[client_id] = waiting.get(client_id, 0) + 1
            if self.stats.sample(waiting, now):
                self._changed()
            await self._return_after_overflow(now)
            for runtime in list(self._agents.values()):
                if runtime.link is None:
                    continue
                on_shift = shift_status(self.tenant, runtime.login, now).on_shift
                if runtime.shown_on_shift not in (None, on_shift):
                    await self._send_state(runtime.login)

    async def _ring(self, action: RouterOffer, now: datetime) -> list[Action]:
        """Ring the agents the router chose, each reserved in the live state first; busy ones go back."""
        more: list[Action] = []
        call = self._calls.get(action.call_id)
        for login in action.agents:
            runtime = self._runtime(login)
            if call is None or runtime.link is None or not await self.live.reserve_agent(login, action.call_id, at=now):
                # Another node holds them (or their page just went): the router tries someone else.
                log.info("agent_busy_elsewhere", call_id=action.call_id, agent=login)
                with contextlib.suppress(RouterError):
                    for a in self.router.busy(action.call_id, login, now):
                        if isinstance(a, AgentChanged) and a.login == login:
                            # Their state here is the router's own; the live state is the other node's to write.
                            self._log_state(a)
                        else:
                            more.append(a)
                continue
            offer = Offer(call, login, uuid.uuid4().hex, now, action.ring_timeout_s)
            if action.whisper and self.prompts is not None:
                offer.whisper = self._spawn(self.prompts.speech(action.whisper))
            runtime.offer = offer
            self.recorder.record(
                call.call_id,
                [self._event(EventKind.OFFERED, agent=login), self._event(EventKind.RINGING, agent=login)],
            )
            self._send(login, self._offer_message(offer))
            await self._send_state(login)
        return more

    async def _cancel(self, action: CancelOffer) -> None:
        runtime = self._runtime(action.agent)
        offer = runtime.offer
        if offer is None or offer.call.call_id != action.call_id:
            return  # never rung here: the reservation failed
        runtime.offer = None
        call = offer.call
        if action.reason == "declined":
            self.recorder.record(call.call_id, [self._event(EventKind.DECLINED, agent=action.agent)])
        elif action.reason in ("timeout", "agent_gone", "busy", "fallback"):
            self.recorder.record(
                call.call_id, [self._event(EventKind.NO_ANSWER, agent=action.agent, reason=action.reason)]
            )
        reason = CANCEL_REASONS.get(action.reason, action.reason)
        self._send(action.agent, {"type": "offer_cancelled", "call_id": call.call_id, "reason": reason})
        await self.live.release_agent(action.agent, call.call_id, "available", at=self.clock.now())
        if offer.rtc_ready.is_set():
            self._spawn(self._close_rtc(call, offer.rtc_id))
        log.info("call_offer_withdrawn", call_id=call.call_id, agent=action.agent, reason=action.reason)

    def _log_state(self, action: AgentChanged) -> None:
        if self.states is not None:
            self.states.changed(action.login, action.state, action.reason, self.clock.now())

    async def _agent_changed(self, action: AgentChanged) -> None:
        self._log_state(action)
        runtime = self._runtime(action.login)
        if runtime.wrapping is not None and action.state != "wrap_up":
            # The wrap-up belongs to the call it followed: its record gets when it ended.
            self.recorder.record(runtime.wrapping, [self._event(EventKind.WRAP_UP_ENDED, agent=action.login)])
            runtime.wrapping = None
        if action.state == "ringing":
            return  # the reservation, made as the offer goes out, says so
        live = runtime.live
        reserved_by = live.call.call_id if action.state == "on_call" and live is not None else None
        await self._set(action.login, action.state, reason=action.reason, reserved_by=reserved_by)

    def _announce(self, action: Announce) -> None:
        call = self._calls.get(action.call_id)
        caller = self.router.callers.get(action.call_id)
        if call is None or caller is None:
            return
        if action.kind == "position" and action.position is not None:
            wait_s = self._estimated_wait(caller.queue_id, action.position)
            text = position_prompt(action.position, wait_s)
            data: dict[str, Any] = {"what": "position", "position": action.position, "wait_s": wait_s}
        else:
            text = action.message or ""
            data = {"what": "periodic"}
        if not text:
            return
        self.recorder.record(call.call_id, [self._event(EventKind.ANNOUNCED, **data, text=text)])
        self._spawn(self._play(call, text))

    async def _return_after_overflow(self, now: datetime) -> None:
        """Callers still waiting on a line whose overflow window ended go back to the client's own number,
        where the client chose that (end_policy = return); otherwise our agents serve them to the end."""
        if self.overflows is None:
            return
        current = self.overflows.current()
        for call_id, caller in list(self.router.callers.items()):
            call = self._calls.get(call_id)
            overflow = current.get(call.line_id) if call is not None and call.line_id is not None else None
            if call is None or overflow is None or caller.ringing:
                continue  # ringing: about to be served; looked at again next time if not
            target = overflow.return_target
            if overflow.end_policy is not EndPolicy.RETURN or target is None or overflow.active(now):
                continue
            await self._route(functools.partial(self.router.hang_up, call_id))
            self._calls.pop(call_id, None)
            self.stats.sent_to_fallback(caller.queue_id, now)
            event = self._event(EventKind.FALLBACK, queue=caller.queue_id, reason="window_ended", to=target, final=True)
            self.recorder.record(call_id, [event])
            self.recorder.end_hint(call_id, "bridge")
            log.info("call_returned_to_client", call_id=call_id, target=target)
            self._spawn(self._transfer(call, target))

    async def _transfer(self, call: QueuedCall, target: str) -> None:
        try:
            await self.workers.request(
                call.worker, "transfer", {"leg": call.leg, "target": target}, timeout=self.settings.request_timeout_s
            )
        except Exception as exc:
            log.warning("call_return_failed", call_id=call.call_id, error=str(exc))

    def _estimated_wait(self, queue_id: str, position: int) -> float | None:
        serving = sum(1 for live in self.router.live.values() if live.queue_id == queue_id)
        mean = self._handle_times.setdefault(queue_id, HandleTimes()).mean()
        return estimated_wait_s(position, serving, mean)

    async def _play(self, call: QueuedCall, text: str, *, then_hang_up: bool = False) -> None:
        """Have the worker say `text` to the caller, after whatever they hear now, never over an agent."""
        path = await self.prompts.speech(text) if self.prompts is not None else None
        if path is None and not then_hang_up:
            return
        body: Message = {"leg": call.leg, "path": path, "then_hang_up": then_hang_up}
        try:
            await self.workers.request(call.worker, "announce", body, timeout=self.settings.request_timeout_s)
        except Exception as exc:
            log.warning("announcement_failed", call_id=call.call_id, error=str(exc))

    def _fallback(self, action: SendToFallback) -> None:
        fallback = action.fallback
        if fallback.kind is FallbackKind.QUEUE and action.call_id in self.router.callers:
            # Moved to another queue: still waiting, and still ours.
            self.recorder.record(
                action.call_id,
                [self._event(EventKind.FALLBACK, queue=action.queue_id, reason=action.reason, to=fallback.target)],
            )
            return
        call = self._calls.pop(action.call_id, None)
        if call is None:
            return
        self.stats.sent_to_fallback(action.queue_id, self.clock.now())
        message = fallback.message or DEFAULT_FALLBACK_MESSAGE
        if fallback.kind in (FallbackKind.VOICEMAIL, FallbackKind.NUMBER):
            log.warning("fallback_not_available", call_id=call.call_id, kind=fallback.kind.value)
        self.recorder.record(
            call.call_id,
            [self._event(EventKind.FALLBACK, queue=action.queue_id, reason=action.reason, final=True)],
        )
        self.recorder.end_hint(call.call_id, "bridge")
        log.info("call_sent_to_fallback", call_id=call.call_id, queue=action.queue_id, reason=action.reason)
        self._spawn(self._play(call, message, then_hang_up=True))

    # ---- helpers ------------------------------------------------------------

    def _runtime(self, login: str) -> AgentRuntime:
        return self._agents.setdefault(login, AgentRuntime(login))

    def _event(self, kind: str, **data: Any) -> TimelineEvent:
        return TimelineEvent(kind, self.clock.now(), self.clock.monotonic(), data)

    async def _agent(self, login: str) -> AgentLive:
        found = await self.live.get_agent(login)
        if found is not None:
            return found
        return AgentLive(login=login, state="logged_out", since=self.clock.now(), connected=False)

    async def _set(self, login: str, state: str, *, reason: str | None = None, reserved_by: str | None = None) -> None:
        current = await self._agent(login)
        runtime = self._runtime(login)
        if current.reserved_by not in (None, reserved_by) and not self._holds(current.reserved_by):
            # Another node rang them: its reservation stands until it releases it.
            log.info("agent_held_elsewhere", agent=login, call_id=current.reserved_by, state=state)
            return
        await self.live.set_agent(
            AgentLive(
                login=login,
                state=state,
                since=self.clock.now() if state != current.state or reason != current.reason else current.since,
                connected=runtime.link is not None,
                reason=reason,
                reserved_by=reserved_by,
            )
        )
        await self._send_state(login)

    def _holds(self, call_id: str | None) -> bool:
        """Whether the call is one of this node's."""
        return call_id in self._calls or any(
            (r.offer is not None and r.offer.call.call_id == call_id)
            or (r.live is not None and r.live.call.call_id == call_id)
            for r in self._agents.values()
        )

    def _send(self, login: str, message: Message) -> None:
        link = self._runtime(login).link
        if link is not None:
            link.send({"v": 1, **message})

    def recording_view(self, call: QueuedCall) -> str:
        """What the page shows: "on" (being recorded), "available" (the agent may start it) or "off"."""
        if call.call_id in self._captures:
            return "on"
        if self.recordings is not None and self.recordings.policy(call.client_id) is RecordingPolicy.ON_DEMAND:
            return "available"
        return "off"

    def _client_view(self, client_id: str) -> Message:
        client = self.tenant.clients.get(client_id)
        if client is None:
            return {"id": client_id, "name": client_id, "kb_url": None}
        return {"id": client.id, "name": client.name, "kb_url": client.knowledge_base_url}

    def _caller_view(self, call: QueuedCall) -> str:
        client = self.tenant.clients.get(call.client_id)
        return mask_number(call.caller) if client is not None and client.mask_caller_number else call.caller

    def _call_message(self, live: LiveCall, status: str, ended_by: str | None = None) -> Message:
        now = self.clock.now()
        return {
            "type": "call",
            "call_id": live.call.call_id,
            "status": status,
            "client": self._client_view(live.call.client_id),
            "caller": self._caller_view(live.call),
            "answered_at": iso_z(live.answered_at),
            "talk_s": round((now - live.answered_at).total_seconds(), 1),
            "muted": live.muted,
            "ended_by": ended_by,
            "recording": self.recording_view(live.call),
        }

    async def _send_state(self, login: str) -> None:
        if self._runtime(login).muted_state:
            return
        agent = await self._agent(login)
        status = shift_status(self.tenant, login, self.clock.now(), self.settings.display_zone)
        slot = status.current
        if self._runtime(login).link is not None:
            self._runtime(login).shown_on_shift = status.on_shift
        self._send(
            login,
            {
                "type": "state",
                "state": agent.state,
                "reason": agent.reason,
                "since": iso_z(agent.since),
                "on_shift": status.on_shift,
                "can_go_available": status.on_shift and agent.state in ("paused", "logged_out", "wrap_up"),
                "why_not": status.why_not,
                "current_slot": None
                if slot is None
                else {
                    "start": iso_z(slot.start),
                    "end": iso_z(slot.end),
                    "clients": [self._client_view(c) for c in sorted(slot.clients)],
                },
                "next_slot_start": iso_z(status.next_start),
            },
        )

    def _send_shifts(self, login: str) -> None:
        now = self.clock.now()
        slots = upcoming_slots(self.tenant, login, now)
        self._send(
            login,
            {
                "type": "shifts",
                "slots": [
                    {
                        "start": iso_z(slot.start),
                        "end": iso_z(slot.end),
                        "clients": [self._client_view(c) for c in sorted(slot.clients)],
                        "now": slot.contains(now),
                    }
                    for slot in slots
                ],
            },
        )

    # ---- agents' links --------------------------------------------------------

    async def agent_connected(self, login: str, link: AgentLink) -> None:
        async with self._lock:
            runtime = self._runtime(login)
            previous, runtime.link = runtime.link, link
            if runtime.grace is not None and (runtime.live is None or runtime.live.media_ok):
                runtime.grace.cancel()
                runtime.grace = None
            live, ringing = runtime.live, runtime.offer
            link.send(
                {
                    "v": 1,
                    "type": "hello",
                    "agent": {"login": login, "name": self.tenant.agents[login].name},
                    "ice_servers": [dict(s) for s in self.settings.ice_servers],
                    "codec": self.settings.codec,
                    "ring_timeout_s": self.settings.ring_timeout_s or RING_TIMEOUT_S,
                    "server_time": iso_z(self.clock.now()),
                    "call": None if live is None else self._call_message(live, "held" if live.held else "connected"),
                }
            )
            stored = await self.live.get_agent(login)
            fresh = self.router.agents[login].state == "logged_out"
            # The page hears its state once, below, not at each step of getting there.
            runtime.muted_state = True
            try:
                await self._route(lambda now: self.router.connect(login, now))
                if fresh and stored is not None:
                    await self._restore(login, stored)
                agent = await self._agent(login)
                if not agent.connected:
                    await self._set(login, agent.state, reason=agent.reason, reserved_by=agent.reserved_by)
            finally:
                runtime.muted_state = False
            await self._send_state(login)
            self._send_shifts(login)
            if ringing is not None and runtime.offer is ringing:
                # Still ringing: the new page shows it (and negotiates its own leg).
                self._send(login, self._offer_message(ringing))
        if previous is not None and previous is not link:
            # One softphone per agent: a second tab would ring twice.
            await previous.close("signed in elsewhere")
        log.info("agent_connected", agent=login)

    async def _restore(self, login: str, stored: AgentLive) -> None:
        """After a restart with shared live state: the agent is as they left it (available, or paused and why)."""
        try:
            if stored.state in ("available", "wrap_up"):
                await self._route(lambda now: self.router.set_available(login, now))
            elif stored.state == "paused" and stored.reason not in (None, "signed in"):
                reason = stored.reason or "break"
                await self._route(lambda now: self.router.pause(login, reason, now))
        except RouterError as exc:
            log.info("agent_state_not_restored", agent=login, state=stored.state, why=str(exc))
        else:
            log.info("agent_state_restored", agent=login, state=stored.state, reason=stored.reason)

    async def agent_disconnected(self, login: str, link: AgentLink) -> None:
        async with self._lock:
            runtime = self._runtime(login)
            if runtime.link is not link:
                return
            runtime.link = None
            if runtime.live is not None and runtime.grace is None:
                runtime.grace = self._spawn(self._grace_expired(login, runtime.live))
            # A ringing offer goes to the next agent at once; an agent on a call keeps it for the grace period.
            await self._route(lambda now: self.router.disconnect(login, now))
            agent = await self._agent(login)
            if agent.connected:
                await self._set(login, agent.state, reason=agent.reason, reserved_by=agent.reserved_by)
        log.info("agent_disconnected", agent=login, on_call=runtime.live is not None)

    async def _grace_expired(self, login: str, live: LiveCall) -> None:
        await asyncio.sleep(self.settings.reconnect_grace_s)
        async with self._lock:
            runtime = self._runtime(login)
            if runtime.live is live and (runtime.link is None or not live.media_ok):
                await self._agent_lost(runtime, "no reconnection within the grace period")

    # ---- messages from a browser ------------------------------------------------

    async def handle(self, login: str, message: Message) -> None:
        """Act on one message; raise ProtocolError with a code when it can't be done."""
        kind = message.get("type")
        if kind == "ping":
            self._send(login, {"type": "pong", "t": message.get("t"), "server_time": iso_z(self.clock.now())})
            return
        handler = self._handlers().get(str(kind))
        if handler is None:
            raise ProtocolError("bad_message", f"unknown message type {kind!r}")
        await handler(login, message)

    def _handlers(self) -> dict[str, Callable[[str, Message], Awaitable[None]]]:
        return {
            "set_state": self._on_set_state,
            "rtc_offer": self._on_rtc_offer,
            "answer": self._on_answer,
            "decline": self._on_decline,
            "hangup": self._on_hangup,
            "hold": self._on_hold,
            "mute": self._on_mute,
            "dtmf": self._on_dtmf,
            "record": self._on_record,
        }

    async def _on_set_state(self, login: str, message: Message) -> None:
        wanted = message.get("state")
        async with self._lock:
            runtime = self._runtime(login)
            if runtime.offer is not None or runtime.live is not None:
                raise ProtocolError("not_allowed", "Finish the current call first.")
            if wanted == "available":
                status = shift_status(self.tenant, login, self.clock.now(), self.settings.display_zone)
                if not status.on_shift:
                    raise ProtocolError("not_on_shift", status.why_not or "You are not on shift.")
                await self._route_or_refuse(lambda now: self.router.set_available(login, now))
            elif wanted == "paused":
                reason = str(message.get("reason") or "break")[:64]
                await self._route_or_refuse(lambda now: self.router.pause(login, reason, now))
            else:
                raise ProtocolError("bad_message", "state must be available or paused")

    async def _route_or_refuse(self, event: Callable[[datetime], list[Action]]) -> None:
        try:
            await self._route(event)
        except RouterError as exc:
            raise ProtocolError("not_allowed" if exc.code == "busy" else exc.code, str(exc)) from None

    def _offer_of(self, login: str, call_id: object) -> Offer:
        offer = self._runtime(login).offer
        if offer is None or offer.call.call_id != call_id:
            raise ProtocolError("no_such_call", "That call is no longer ringing for you.")
        return offer

    def _live_of(self, login: str, call_id: object) -> LiveCall:
        live = self._runtime(login).live
        if live is None or live.call.call_id != call_id:
            raise ProtocolError("no_such_call", "You are not on that call.")
        return live

    async def _on_rtc_offer(self, login: str, message: Message) -> None:
        sdp = message.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise ProtocolError("bad_message", "sdp must be an SDP offer")
        runtime = self._runtime(login)
        live = runtime.live
        if live is not None and live.call.call_id == message.get("call_id"):
            # The media path broke mid-call: the same peer connection, restarted.
            answer = await self._worker(live.call, "rtc_update", {"rtc_id": live.rtc_id, "sdp": sdp})
            self._send(login, {"type": "rtc_answer", "call_id": live.call.call_id, "sdp": answer["sdp"]})
            return
        offer = self._offer_of(login, message.get("call_id"))
        if offer.rtc_ready.is_set():
            # A reloaded page negotiates again while still ringing: same leg, new offer.
            answer = await self._worker(offer.call, "rtc_update", {"rtc_id": offer.rtc_id, "sdp": sdp})
        else:
            body = {"leg": offer.call.leg, "rtc_id": offer.rtc_id, "sdp": sdp, "codec": self.settings.codec}
            answer = await self._worker(offer.call, "rtc_open", body)
        if runtime.offer is not offer:
            # Withdrawn while negotiating: the leg just opened must not linger.
            self._spawn(self._close_rtc(offer.call, offer.rtc_id))
            return
        offer.rtc_ready.set()
        self._send(login, {"type": "rtc_answer", "call_id": offer.call.call_id, "sdp": answer["sdp"]})

    async def _worker(self, call: QueuedCall, kind: str, body: Message) -> Message:
        try:
            return await self.workers.request(call.worker, kind, body, timeout=self.settings.request_timeout_s)
        except Exception as exc:
            log.warning("worker_request_failed", call_id=call.call_id, kind=kind, error=str(exc))
            raise ProtocolError("media_failed", f"The media worker could not {kind.replace('_', ' ')}.") from exc

    async def _on_answer(self, login: str, message: Message) -> None:
        offer = self._offer_of(login, message.get("call_id"))
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                await offer.rtc_ready.wait()
        except TimeoutError:
            raise ProtocolError("media_failed", "The audio path is not ready yet.") from None
        await self._whisper(offer)
        async with self._lock:
            runtime = self._runtime(login)
            if runtime.offer is not offer:
                raise ProtocolError("no_such_call", "That call is no longer ringing for you.")
            # Audio first: the click must be heard at once; the record follows.
            capture = self._capture_on_answer(offer.call)
            body: Message = {"leg": offer.call.leg, "rtc_id": offer.rtc_id}
            if capture is not None:
                body["record"] = capture.worker_files()
            await self._worker(offer.call, "bridge", body)
            runtime.offer = None
            call = offer.call
            caller = self.router.callers[call.call_id]
            queue_id = caller.queue_id
            now = self.clock.now()
            self.stats.answered(queue_id, (now - caller.arrived_at).total_seconds(), now)
            self._calls.pop(call.call_id, None)
            live = LiveCall(call, login, offer.rtc_id, self.clock.now(), queue_id)
            runtime.live = live
            self.recorder.record(call.call_id, [self._event(EventKind.ANSWERED, agent=login)])
            await self._route(lambda now: self.router.answered(call.call_id, login, now))
            self._send(login, self._call_message(live, "connected"))

    def _capture_on_answer(self, call: QueuedCall) -> Capture | None:
        """The recording the answer starts (policy "always") or carries on (an agent after one lost)."""
        capture = self._captures.get(call.call_id)
        if capture is not None or self.recordings is None:
            return capture
        if self.recordings.policy(call.client_id) is not RecordingPolicy.ALWAYS:
            return None
        capture = self._captures[call.call_id] = self.recordings.capture(call.call_id, call.client_id, "policy")
        self.recorder.record(call.call_id, [self._event(EventKind.RECORDING_STARTED, by="policy")])
        return capture

    async def start_recording(self, call_id: str, by: str) -> None:
        """Record an answered call from now on, asked by its agent or a supervisor (policy "on_demand")."""
        async with self._lock:
            live = self.live_call(call_id)
            if live is None:
                raise ProtocolError("no_such_call", "That call is not connected to an agent.")
            policy = RecordingPolicy.OFF if self.recordings is None else self.recordings.policy(live.call.client_id)
            if call_id in self._captures:
                raise ProtocolError("already_recording", "That call is already being recorded.")
            if self.recordings is None or policy is not RecordingPolicy.ON_DEMAND:
                raise ProtocolError("recording_not_allowed", "This client's calls are not recorded on demand.")
            capture = self.recordings.capture(call_id, live.call.client_id, by)
            await self._worker(live.call, "record", {"rtc_id": live.rtc_id, "record": capture.worker_files()})
            self._captures[call_id] = capture
            self.recorder.record(call_id, [self._event(EventKind.RECORDING_STARTED, by=by)])
            self._send(live.agent, self._call_message(live, "connected"))

    async def _whisper(self, offer: Offer) -> None:
        """The queue's whisper, to the agent only, before the caller is connected (app_queue's `announce`).

        Outside the lock: it lasts a second or two, and routing doesn't wait for it."""
        if offer.whisper is None:
            return
        try:
            path = await asyncio.wait_for(asyncio.shield(offer.whisper), self.settings.request_timeout_s)
            if path is not None:
                body = {"rtc_id": offer.rtc_id, "path": path}
                await self.workers.request(offer.call.worker, "whisper", body, timeout=self.settings.request_timeout_s)
        except Exception as exc:
            # The call goes on without it.
            log.warning("whisper_failed", call_id=offer.call.call_id, agent=offer.agent, error=str(exc))

    async def _on_record(self, login: str, message: Message) -> None:
        live = self._live_of(login, message.get("call_id"))
        await self.start_recording(live.call.call_id, login)

    async def _on_decline(self, login: str, message: Message) -> None:
        async with self._lock:
            offer = self._offer_of(login, message.get("call_id"))
            await self._route(lambda now: self.router.declined(offer.call.call_id, login, now))

    async def _on_hangup(self, login: str, message: Message) -> None:
        live = self._live_of(login, message.get("call_id"))
        self.recorder.end_hint(live.call.call_id, "agent")
        await self._worker(live.call, "hangup", {"leg": live.call.leg})

    async def _on_hold(self, login: str, message: Message) -> None:
        on = bool(message.get("on"))
        async with self._lock:
            live = self._live_of(login, message.get("call_id"))
            if live.held == on:
                return
            await self._worker(live.call, "hold", {"leg": live.call.leg, "rtc_id": live.rtc_id, "on": on})
            live.held = on
            self.recorder.record(live.call.call_id, [self._event(EventKind.HOLD if on else EventKind.UNHOLD)])
            self._send(login, self._call_message(live, "held" if on else "connected"))

    async def _on_mute(self, login: str, message: Message) -> None:
        on = bool(message.get("on"))
        async with self._lock:
            live = self._live_of(login, message.get("call_id"))
            await self._worker(live.call, "mute", {"rtc_id": live.rtc_id, "on": on})
            live.muted = on
            self._send(login, self._call_message(live, "held" if live.held else "connected"))

    async def _on_dtmf(self, login: str, message: Message) -> None:
        digits = message.get("digits")
        if not isinstance(digits, str) or not DTMF_DIGITS.match(digits):
            raise ProtocolError("bad_message", "digits must be 1-32 of 0-9 * # A-D")
        live = self._live_of(login, message.get("call_id"))
        await self._worker(live.call, "dtmf", {"leg": live.call.leg, "digits": digits.upper()})

    # ---- calls ----------------------------------------------------------------

    async def call_queued(self, call: QueuedCall) -> None:
        queue_id = call.queue_id
        if queue_id is None or queue_id not in self.router.queues:
            queue_id = self.tenant.client_queue(call.client_id).id
        async with self._lock:
            self._calls[call.call_id] = call
            try:
                await self._route(lambda now: self.router.arrive(call.call_id, queue_id, now, priority=call.priority))
            except RouterError as exc:
                self._calls.pop(call.call_id, None)
                log.error("call_not_queued", call_id=call.call_id, queue=queue_id, error=str(exc))

    async def call_ended(self, call_id: str, ended_by: str) -> None:
        """The caller's leg is gone (any reason): stop ringing, or close the agent's call."""
        async with self._lock:
            caller = self.router.callers.get(call_id)
            if caller is not None:
                now = self.clock.now()
                self.stats.abandoned(caller.queue_id, (now - caller.arrived_at).total_seconds(), now)
                await self._route(lambda now: self.router.hang_up(call_id, now))
            self._calls.pop(call_id, None)
            capture = self._captures.pop(call_id, None)
            if capture is not None and self.recordings is not None:
                self._spawn(self.recordings.finish(capture))
            for runtime in self._agents.values():
                live = runtime.live
                if live is not None and live.call.call_id == call_id:
                    runtime.live = None
                    if runtime.grace is not None:
                        runtime.grace.cancel()
                        runtime.grace = None
                    self._send(runtime.login, self._call_message(live, "ended", ended_by))
                    await self._end_call(runtime.login, live)

    async def _end_call(self, login: str, live: LiveCall) -> None:
        """The router starts the agent's wrap-up (or makes them available); the handle time feeds estimates."""
        talk_s = max(0.0, (self.clock.now() - live.answered_at).total_seconds())
        client = self.tenant.clients.get(live.call.client_id)
        card = self.tenant.rate_cards.get(live.call.client_id)
        earned = Decimal(0)
        if card is not None and client is not None:
            # As the statement will price it (premiums included), so fair_earnings sees the same money.
            overflow = any(line.id == live.call.line_id and line.overflow for line in self.tenant.lines)
            paid = PaidCall(live.call.call_id, client.id, login, live.answered_at, talk_s, overflow)
            earned = price_call(paid, PayRules.of(card), client.timezone).amount
        wrap_s = client.wrap_up_s if client is not None else 0
        self._handle_times.setdefault(live.queue_id, HandleTimes()).observe(talk_s + wrap_s)
        await self.live.release_agent(login, live.call.call_id, "wrap_up", at=self.clock.now())
        self._runtime(login).wrapping = live.call.call_id
        await self._route(
            lambda now: self.router.call_ended(live.call.call_id, login, now, talk_s=talk_s, earned=earned)
        )

    async def rtc_state(self, rtc_id: str, state: str) -> None:
        async with self._lock:
            for runtime in self._agents.values():
                live = runtime.live
                if live is None or live.rtc_id != rtc_id:
                    continue
                live.media_ok = state == "connected"
                if live.media_ok and runtime.link is not None and runtime.grace is not None:
                    runtime.grace.cancel()
                    runtime.grace = None
                elif not live.media_ok and runtime.grace is None:
                    # The page restarts ICE on its own; give it the grace period.
                    runtime.grace = self._spawn(self._grace_expired(runtime.login, live))

    async def _agent_lost(self, runtime: AgentRuntime, why: str) -> None:
        """The agent can't carry on: the caller goes back to music, first in line."""
        live = runtime.live
        if live is None:
            return
        runtime.live = None
        runtime.grace = None
        call = live.call
        self.recorder.record(call.call_id, [self._event(EventKind.AGENT_LOST, agent=runtime.login)])
        self._spawn(self._close_rtc(call, live.rtc_id))
        self._calls[call.call_id] = call
        await self.live.release_agent(runtime.login, call.call_id, "paused", at=self.clock.now())
        await self._route(lambda now: self.router.agent_lost(call.call_id, now))
        log.warning("agent_lost", call_id=call.call_id, agent=runtime.login, why=why)

    async def _close_rtc(self, call: QueuedCall, rtc_id: str) -> None:
        with contextlib.suppress(ProtocolError):
            await self._worker(call, "rtc_close", {"rtc_id": rtc_id})

    # ---- offers -----------------------------------------------------------------

    def _offer_message(self, offer: Offer) -> Message:
        call = offer.call
        return {
            "type": "offer",
            "call_id": call.call_id,
            "client": self._client_view(call.client_id),
            "caller": self._caller_view(call),
            "waited_s": round((self.clock.now() - call.queued_at).total_seconds(), 1),
            "queued_at": iso_z(call.queued_at),
            "ring_timeout_s": offer.ring_timeout_s,
        }

    # ---- introspection ------------------------------------------------------------

    def live_calls(self) -> list[LiveCall]:
        """Calls an agent is on now."""
        return [r.live for r in self._agents.values() if r.live is not None]

    def live_call(self, call_id: str) -> LiveCall | None:
        """The call, if an agent is on it now."""
        return next((live for live in self.live_calls() if live.call.call_id == call_id), None)

    def agent_link(self, login: str) -> AgentLink | None:
        return self._runtime(login).link

    def snapshot(self) -> Message:
        return {
            "waiting": sorted(c for c, caller in self.router.callers.items() if not caller.ringing),
            "queues": {q: self.router.waiting(q) for q in sorted(self.router.queues) if self.router.waiting(q)},
            "ringing": {r.login: r.offer.call.call_id for r in self._agents.values() if r.offer},
            "on_call": {r.login: r.live.call.call_id for r in self._agents.values() if r.live},
        }
