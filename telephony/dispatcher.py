"""Agents and the calls offered to them, as the control process runs them.

The dispatcher keeps each connected agent's browser link, offers waiting
calls by the rules in `dialplan.offers`, relays the WebRTC offer to the
worker that holds the call, and turns the agent's clicks into worker
commands and timeline events. Agent states live in the live state (so a
reservation is atomic even with several nodes); links, timers and offers
live here, in this process.

Media never goes through here: the browser's peer connection ends in the
worker. The leg is negotiated while the phone rings, so answering only
connects audio in the worker's conference bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from dialplan.clock import Clock
from dialplan.offers import RING_TIMEOUT_S, AgentCandidate, WaitingCall, choose_agent, dispatch_order, mask_number
from dialplan.shifts import shift_status, upcoming_slots
from dialplan.tenant import Tenant
from dialplan.timeline import EventKind, TimelineEvent
from store.live_state import AgentLive, LiveState

log = structlog.get_logger("telephony.dispatcher")

Message = dict[str, Any]
DTMF_DIGITS = re.compile(r"^[0-9*#A-Da-d]{1,32}$")
# A re-queued caller (agent lost) goes ahead of everyone waiting.
REQUEUE_PRIORITY = 1000
# How often waiting calls are looked at again, for agents whose slot just began.
TICK_S = 2.0


class AgentLink(Protocol):
    """One browser's WebSocket, as the dispatcher sees it."""

    def send(self, message: Message) -> None: ...

    async def close(self, reason: str) -> None: ...


class WorkerRequests(Protocol):
    async def request(self, index: int, kind: str, body: Message, timeout: float = 5.0) -> Message: ...


class CallRecorder(Protocol):
    def record(self, call_id: str, events: Sequence[TimelineEvent]) -> None: ...

    def end_hint(self, call_id: str, by: str) -> None: ...


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
    passed_by: dict[str, datetime] = field(default_factory=dict)


@dataclass
class Offer:
    call: QueuedCall
    agent: str
    rtc_id: str
    offered_at: datetime
    timer: asyncio.Task[None] | None = None
    rtc_ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class LiveCall:
    call: QueuedCall
    agent: str
    rtc_id: str
    answered_at: datetime
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
    wrap_up: asyncio.Task[None] | None = None
    # Whether the last state sent to the page said "on shift".
    shown_on_shift: bool | None = None


@dataclass(frozen=True)
class DispatcherSettings:
    ring_timeout_s: float = RING_TIMEOUT_S
    # A dropped WebSocket during a call has this long to come back.
    reconnect_grace_s: float = 10.0
    ice_servers: tuple[Mapping[str, Any], ...] = ()
    codec: str = "PCMU"
    # The zone plain-words shift explanations are written in.
    display_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    request_timeout_s: float = 5.0


def _iso(instant: datetime | None) -> str | None:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z") if instant else None


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
    ) -> None:
        self.tenant = tenant
        self.live = live
        self.clock = clock
        self.workers = workers
        self.recorder = recorder
        self.settings = settings
        self._agents: dict[str, AgentRuntime] = {}
        self._waiting: dict[str, QueuedCall] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        for runtime in self._agents.values():
            timers = [runtime.grace, runtime.wrap_up, runtime.offer.timer if runtime.offer else None]
            for timer in timers:
                if timer is not None:
                    timer.cancel()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self._follow_shifts()
                await self.dispatch()
            except Exception:
                log.exception("dispatch_tick_failed")

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

    def _send(self, login: str, message: Message) -> None:
        link = self._runtime(login).link
        if link is not None:
            link.send({"v": 1, **message})

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
            "answered_at": _iso(live.answered_at),
            "talk_s": round((now - live.answered_at).total_seconds(), 1),
            "muted": live.muted,
            "ended_by": ended_by,
        }

    async def _send_state(self, login: str) -> None:
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
                "since": _iso(agent.since),
                "on_shift": status.on_shift,
                "can_go_available": status.on_shift and agent.state in ("paused", "logged_out", "wrap_up"),
                "why_not": status.why_not,
                "current_slot": None
                if slot is None
                else {
                    "start": _iso(slot.start),
                    "end": _iso(slot.end),
                    "clients": [self._client_view(c) for c in sorted(slot.clients)],
                },
                "next_slot_start": _iso(status.next_start),
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
                        "start": _iso(slot.start),
                        "end": _iso(slot.end),
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
            agent = await self._agent(login)
            state, reason = agent.state, agent.reason
            if state == "logged_out":
                state, reason = "paused", "signed in"
            await self.live.set_agent(
                AgentLive(
                    login=login,
                    state=state,
                    since=agent.since if state == agent.state else self.clock.now(),
                    connected=True,
                    reason=reason,
                    reserved_by=agent.reserved_by,
                )
            )
            live = runtime.live
            link.send(
                {
                    "v": 1,
                    "type": "hello",
                    "agent": {"login": login, "name": self.tenant.agents[login].name},
                    "ice_servers": [dict(s) for s in self.settings.ice_servers],
                    "codec": self.settings.codec,
                    "ring_timeout_s": self.settings.ring_timeout_s,
                    "server_time": _iso(self.clock.now()),
                    "call": None if live is None else self._call_message(live, "held" if live.held else "connected"),
                }
            )
            await self._send_state(login)
            self._send_shifts(login)
            if runtime.offer is not None:
                # Still ringing: the new page shows it (and negotiates its own leg).
                self._send(login, self._offer_message(runtime.offer.call))
        if previous is not None and previous is not link:
            # One softphone per agent: a second tab would ring twice.
            await previous.close("signed in elsewhere")
        log.info("agent_connected", agent=login)

    async def agent_disconnected(self, login: str, link: AgentLink) -> None:
        async with self._lock:
            runtime = self._runtime(login)
            if runtime.link is not link:
                return
            runtime.link = None
            agent = await self._agent(login)
            if runtime.offer is not None:
                await self._withdraw_offer(runtime.offer, EventKind.NO_ANSWER, "disconnected")
                await self._set(login, "paused", reason="disconnected")
            elif runtime.live is not None:
                runtime.grace = self._spawn(self._grace_expired(login, runtime.live))
                await self.live.set_agent(
                    AgentLive(
                        login=login,
                        state=agent.state,
                        since=agent.since,
                        connected=False,
                        reason=agent.reason,
                        reserved_by=agent.reserved_by,
                    )
                )
            else:
                await self._set(login, "paused" if agent.state != "logged_out" else "logged_out", reason="disconnected")
        log.info("agent_disconnected", agent=login, on_call=runtime.live is not None)
        self._spawn(self.dispatch())

    async def _grace_expired(self, login: str, live: LiveCall) -> None:
        await asyncio.sleep(self.settings.reconnect_grace_s)
        async with self._lock:
            runtime = self._runtime(login)
            if runtime.live is live and (runtime.link is None or not live.media_ok):
                await self._agent_lost(runtime, "no reconnection within the grace period")
        await self.dispatch()

    # ---- messages from a browser ------------------------------------------------

    async def handle(self, login: str, message: Message) -> None:
        """Act on one message; raise ProtocolError with a code when it can't be done."""
        kind = message.get("type")
        if kind == "ping":
            self._send(login, {"type": "pong", "t": message.get("t"), "server_time": _iso(self.clock.now())})
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
                if runtime.wrap_up is not None:
                    runtime.wrap_up.cancel()
                    runtime.wrap_up = None
                await self._set(login, "available")
            elif wanted == "paused":
                reason = str(message.get("reason") or "break")[:64]
                await self._set(login, "paused", reason=reason)
            else:
                raise ProtocolError("bad_message", "state must be available or paused")
        await self.dispatch()

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
        async with self._lock:
            runtime = self._runtime(login)
            if runtime.offer is not offer:
                raise ProtocolError("no_such_call", "That call is no longer ringing for you.")
            # Audio first: the click must be heard at once; the record follows.
            await self._worker(offer.call, "bridge", {"leg": offer.call.leg, "rtc_id": offer.rtc_id})
            self._end_offer_timer(offer)
            runtime.offer = None
            call = offer.call
            self._waiting.pop(call.call_id, None)
            live = LiveCall(call, login, offer.rtc_id, self.clock.now())
            runtime.live = live
            self.recorder.record(call.call_id, [self._event(EventKind.ANSWERED, agent=login)])
            await self._set(login, "on_call", reserved_by=call.call_id)
            self._send(login, self._call_message(live, "connected"))

    async def _on_decline(self, login: str, message: Message) -> None:
        async with self._lock:
            offer = self._offer_of(login, message.get("call_id"))
            await self._withdraw_offer(offer, EventKind.DECLINED, "declined")
            await self._set(login, "available")
        await self.dispatch()

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
        async with self._lock:
            self._waiting[call.call_id] = call
        await self.dispatch()

    async def call_ended(self, call_id: str, ended_by: str) -> None:
        """The caller's leg is gone (any reason): stop ringing, or close the agent's call."""
        async with self._lock:
            self._waiting.pop(call_id, None)
            for runtime in self._agents.values():
                offer = runtime.offer
                if offer is not None and offer.call.call_id == call_id:
                    self._end_offer_timer(offer)
                    runtime.offer = None
                    self._send(
                        runtime.login, {"type": "offer_cancelled", "call_id": call_id, "reason": "caller_hung_up"}
                    )
                    await self.live.release_agent(runtime.login, call_id, "available", at=self.clock.now())
                    await self._send_state(runtime.login)
                live = runtime.live
                if live is not None and live.call.call_id == call_id:
                    runtime.live = None
                    self._send(runtime.login, self._call_message(live, "ended", ended_by))
                    await self._start_wrap_up(runtime, live.call)
        await self.dispatch()

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

    async def _start_wrap_up(self, runtime: AgentRuntime, call: QueuedCall) -> None:
        client = self.tenant.clients.get(call.client_id)
        wrap_s = client.wrap_up_s if client is not None else 0
        await self.live.release_agent(runtime.login, call.call_id, "wrap_up", at=self.clock.now())
        await self._send_state(runtime.login)
        runtime.wrap_up = self._spawn(self._finish_wrap_up(runtime.login, wrap_s))

    async def _finish_wrap_up(self, login: str, wrap_s: float) -> None:
        await asyncio.sleep(wrap_s)
        async with self._lock:
            runtime = self._runtime(login)
            runtime.wrap_up = None
            agent = await self._agent(login)
            if agent.state != "wrap_up":
                return
            status = shift_status(self.tenant, login, self.clock.now())
            if runtime.link is not None and status.on_shift:
                await self._set(login, "available")
            else:
                await self._set(login, "paused", reason="disconnected" if runtime.link is None else "end of shift")
        await self.dispatch()

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
        call.priority = REQUEUE_PRIORITY
        call.passed_by[runtime.login] = self.clock.now()
        self._waiting[call.call_id] = call
        await self.live.release_agent(runtime.login, call.call_id, "paused", at=self.clock.now())
        await self._set(runtime.login, "paused", reason="disconnected")
        log.warning("agent_lost", call_id=call.call_id, agent=runtime.login, why=why)

    async def _close_rtc(self, call: QueuedCall, rtc_id: str) -> None:
        with contextlib.suppress(ProtocolError):
            await self._worker(call, "rtc_close", {"rtc_id": rtc_id})

    # ---- offers -----------------------------------------------------------------

    async def dispatch(self) -> None:
        """Offer every waiting call that nobody is ringing for, as agents allow."""
        async with self._lock:
            ringing = {r.offer.call.call_id for r in self._agents.values() if r.offer is not None}
            waiting = [c for c in self._waiting.values() if c.call_id not in ringing]
            if not waiting:
                return
            agents = await self.live.agents()
            candidates = [
                AgentCandidate(
                    a.login,
                    a.state,
                    a.since,
                    a.connected and self._runtime(a.login).link is not None,
                    reserved=a.reserved_by is not None,
                )
                for a in agents
                if a.login in self.tenant.agents
            ]
            now = self.clock.now()
            taken: set[str] = set()
            for call in dispatch_order(self._as_waiting(c) for c in waiting):
                login = choose_agent(self.tenant, call, candidates, now, taken=taken)
                if login is None:
                    continue
                taken.add(login)
                if await self.live.reserve_agent(login, call.call_id, at=now):
                    self._offer(self._waiting[call.call_id], login)

    @staticmethod
    def _as_waiting(call: QueuedCall) -> WaitingCall:
        return WaitingCall(call.call_id, call.client_id, call.queued_at, call.priority, dict(call.passed_by))

    def _offer(self, call: QueuedCall, login: str) -> None:
        runtime = self._runtime(login)
        offer = Offer(call, login, uuid.uuid4().hex, self.clock.now())
        runtime.offer = offer
        offer.timer = self._spawn(self._ring_timeout(offer))
        self.recorder.record(
            call.call_id, [self._event(EventKind.OFFERED, agent=login), self._event(EventKind.RINGING, agent=login)]
        )
        self._send(login, self._offer_message(call))
        self._spawn(self._send_state(login))

    def _offer_message(self, call: QueuedCall) -> Message:
        return {
            "type": "offer",
            "call_id": call.call_id,
            "client": self._client_view(call.client_id),
            "caller": self._caller_view(call),
            "waited_s": round((self.clock.now() - call.queued_at).total_seconds(), 1),
            "queued_at": _iso(call.queued_at),
            "ring_timeout_s": self.settings.ring_timeout_s,
        }

    async def _ring_timeout(self, offer: Offer) -> None:
        await asyncio.sleep(self.settings.ring_timeout_s)
        async with self._lock:
            if self._runtime(offer.agent).offer is not offer:
                return
            offer.timer = None
            await self._withdraw_offer(offer, EventKind.NO_ANSWER, "timeout")
            # Not at the desk: don't ring them again until they say they're back.
            await self._set(offer.agent, "paused", reason="missed a call")
        await self.dispatch()

    def _end_offer_timer(self, offer: Offer) -> None:
        if offer.timer is not None and offer.timer is not asyncio.current_task():
            offer.timer.cancel()
        offer.timer = None

    async def _withdraw_offer(self, offer: Offer, kind: str, reason: str) -> None:
        """Stop ringing `offer.agent`; the call waits for the next agent. Caller holds the lock."""
        runtime = self._runtime(offer.agent)
        if runtime.offer is not offer:
            return
        runtime.offer = None
        self._end_offer_timer(offer)
        call = offer.call
        call.passed_by[offer.agent] = self.clock.now()
        self.recorder.record(call.call_id, [self._event(kind, agent=offer.agent)])
        self._send(offer.agent, {"type": "offer_cancelled", "call_id": call.call_id, "reason": reason})
        await self.live.release_agent(offer.agent, call.call_id, "available", at=self.clock.now())
        if offer.rtc_ready.is_set():
            self._spawn(self._close_rtc(call, offer.rtc_id))
        log.info("call_offer_withdrawn", call_id=call.call_id, agent=offer.agent, reason=reason)

    async def _follow_shifts(self) -> None:
        """Available agents whose slot ended are paused; every page hears when its agent's slot starts or ends."""
        now = self.clock.now()
        async with self._lock:
            for agent in await self.live.agents():
                on_shift = shift_status(self.tenant, agent.login, now).on_shift
                if agent.state == "available" and not on_shift:
                    await self._set(agent.login, "paused", reason="end of shift")
                elif self._runtime(agent.login).shown_on_shift not in (None, on_shift):
                    await self._send_state(agent.login)

    # ---- introspection ------------------------------------------------------------

    def snapshot(self) -> Message:
        return {
            "waiting": sorted(self._waiting),
            "ringing": {r.login: r.offer.call.call_id for r in self._agents.values() if r.offer},
            "on_call": {r.login: r.live.call.call_id for r in self._agents.values() if r.live},
        }
