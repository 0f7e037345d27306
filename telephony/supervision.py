"""Supervisors: the live wallboard, and listening, whispering or barging into calls.

A supervisor's browser keeps one WebSocket (docs/supervisor-protocol.md).
Over it the wallboard is pushed whenever the floor changes, never polled,
and only with the clients in the supervisor's scope. To step into a call
the page sends its WebRTC offer; the worker holding the call opens a leg
for it on the call's conference bridge, and a change of mode only changes
the bridge's connections there.

Every request is checked here, on the server: the call's client must be in
the supervisor's scope and allow live listening. Each join, mode change and
leave goes on the call's timeline, naming the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from dialplan.clock import Clock, iso_z
from dialplan.tenant import Tenant
from dialplan.timeline import EventKind, TimelineEvent
from store.live_state import LiveState
from telephony.dispatcher import CallRecorder, Dispatcher, LiveCall, WorkerRequests

log = structlog.get_logger("telephony.supervision")

Message = dict[str, Any]
MODES = ("listen", "whisper", "barge")
# A burst of floor changes is pushed as one wallboard, this long after the first.
PUSH_DELAY_S = 0.1


class SupervisorLink(Protocol):
    def send(self, message: Message) -> None: ...


class SupervisionRefused(ValueError):
    """A request the supervisor may not make; `code` is the protocol's, `status` the HTTP one."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass
class Listening:
    supervisor: str
    call_id: str
    rtc_id: str
    mode: str
    worker: int
    leg: int
    agent: str


class Supervision:
    def __init__(
        self,
        *,
        tenant: Tenant,
        dispatcher: Dispatcher,
        live: LiveState,
        workers: WorkerRequests,
        recorder: CallRecorder,
        clock: Clock,
        ice_servers: Sequence[Mapping[str, Any]] = (),
        codec: str = "PCMU",
        request_timeout_s: float = 5.0,
    ) -> None:
        self.tenant = tenant
        self.dispatcher = dispatcher
        self.live = live
        self.workers = workers
        self.recorder = recorder
        self.clock = clock
        self.ice_servers = tuple(ice_servers)
        self.codec = codec
        self.request_timeout_s = request_timeout_s
        self._links: dict[str, set[SupervisorLink]] = {}
        self._listening: dict[tuple[str, str], Listening] = {}
        self._push: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        dispatcher.watchers.append(self._floor_changed)

    # ---- scope ----------------------------------------------------------------

    def scope(self, login: str) -> frozenset[str]:
        supervisor = self.tenant.supervisors.get(login)
        return supervisor.clients if supervisor is not None else frozenset()

    def live_call(self, login: str, call_id: str) -> LiveCall:
        """The call, if this supervisor may step into it; SupervisionRefused otherwise."""
        found = self.dispatcher.live_call(call_id)
        if found is None:
            raise SupervisionRefused("no_such_call", "That call is not in progress.", 404)
        client = self.tenant.clients.get(found.call.client_id)
        if client is None or client.id not in self.scope(login):
            raise SupervisionRefused("forbidden", "This call belongs to a client you do not supervise.")
        if not client.live_listening:
            raise SupervisionRefused("listening_forbidden", f"{client.name} does not allow live listening.")
        return found

    def calls(self, login: str) -> list[Message]:
        scope = self.scope(login)
        return [self._call_view(c) for c in self.dispatcher.live_calls() if c.call.client_id in scope]

    # ---- links ------------------------------------------------------------------

    async def connected(self, login: str, link: SupervisorLink) -> None:
        self._links.setdefault(login, set()).add(link)
        supervisor = self.tenant.supervisors[login]
        link.send(
            {
                "v": 1,
                "type": "hello",
                "supervisor": {"login": login, "name": supervisor.name},
                "clients": [self._client_view(c) for c in sorted(supervisor.clients) if c in self.tenant.clients],
                "ice_servers": [dict(s) for s in self.ice_servers],
                "codec": self.codec,
                "modes": list(MODES),
            }
        )
        link.send({"v": 1, **await self.board(login)})

    async def disconnected(self, login: str, link: SupervisorLink) -> None:
        links = self._links.get(login, set())
        links.discard(link)
        if not links:
            # Their last page is gone: so are they, from every call they were on.
            for listening in [lst for lst in self._listening.values() if lst.supervisor == login]:
                await self._leave(listening, "disconnected")

    def _send(self, login: str, message: Message) -> None:
        for link in list(self._links.get(login, ())):
            link.send({"v": 1, **message})

    # ---- messages ---------------------------------------------------------------

    async def handle(self, login: str, message: Message) -> None:
        kind = message.get("type")
        if kind == "ping":
            self._send(login, {"type": "pong", "t": message.get("t")})
        elif kind == "join":
            await self._join(login, str(message.get("call_id")), message.get("sdp"), message.get("mode", "listen"))
        elif kind == "mode":
            await self._mode(login, str(message.get("call_id")), message.get("mode"))
        elif kind == "leave":
            listening = self._listening.get((login, str(message.get("call_id"))))
            if listening is None:
                raise SupervisionRefused("not_listening", "You are not on that call.", 404)
            await self._leave(listening, "left")
        elif kind == "record":
            await self.record(login, str(message.get("call_id")))
        else:
            raise SupervisionRefused("bad_message", f"unknown message type {kind!r}", 400)

    async def record(self, login: str, call_id: str) -> None:
        """Start recording a call of a client this supervisor supervises (policy "on_demand").

        Unlike listening, this needs no live_listening: the client chose on-demand recording."""
        found = self.dispatcher.live_call(call_id)
        if found is None or found.call.client_id not in self.scope(login):
            # Out of scope and absent look the same: ids are not to be probed.
            raise SupervisionRefused("no_such_call", "That call is not in progress.", 404)
        try:
            await self.dispatcher.start_recording(call_id, login)
        except ValueError as exc:
            raise SupervisionRefused(getattr(exc, "code", "recording_not_allowed"), str(exc), 409) from exc
        log.info("recording_started", call_id=call_id, by=login)
        self._floor_changed()

    async def _join(self, login: str, call_id: str, sdp: object, mode: object) -> None:
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise SupervisionRefused("bad_message", "sdp must be an SDP offer", 400)
        mode = _mode_of(mode)
        call = self.live_call(login, call_id)
        if (login, call_id) in self._listening:
            raise SupervisionRefused("already_listening", "You are already on that call.", 409)
        rtc_id = f"sup-{uuid.uuid4().hex}"
        worker, leg = call.call.worker, call.call.leg
        answer = await self._worker(worker, "rtc_open", {"leg": leg, "rtc_id": rtc_id, "sdp": sdp, "codec": self.codec})
        listening = Listening(login, call_id, rtc_id, mode, worker, leg, call.agent)
        self._listening[(login, call_id)] = listening
        try:
            await self._worker(worker, "supervise", {"rtc_id": rtc_id, "agent_rtc_id": call.rtc_id, "mode": mode})
        except SupervisionRefused:
            await self._leave(listening, "failed", record=False)
            raise
        self.recorder.record(call_id, [self._event(EventKind.SUPERVISOR_JOINED, supervisor=login, mode=mode)])
        self._send(login, {"type": "joined", "call_id": call_id, "sdp": answer["sdp"], "mode": mode})
        self._tell_agent(listening)
        log.info("supervisor_joined", call_id=call_id, supervisor=login, mode=mode)
        self._floor_changed()

    async def _mode(self, login: str, call_id: str, mode: object) -> None:
        mode = _mode_of(mode)
        listening = self._listening.get((login, call_id))
        if listening is None:
            raise SupervisionRefused("not_listening", "Join the call first.", 404)
        # Scope and policy again: the tenant file may have changed, the call may have moved on.
        call = self.live_call(login, call_id)
        if mode == listening.mode:
            return
        await self._worker(
            listening.worker, "supervise", {"rtc_id": listening.rtc_id, "agent_rtc_id": call.rtc_id, "mode": mode}
        )
        listening.mode = mode
        self.recorder.record(call_id, [self._event(EventKind.SUPERVISOR_MODE, supervisor=login, mode=mode)])
        self._send(login, {"type": "mode", "call_id": call_id, "mode": mode})
        self._tell_agent(listening)
        self._floor_changed()

    async def _leave(self, listening: Listening, why: str, *, record: bool = True) -> None:
        if self._listening.pop((listening.supervisor, listening.call_id), None) is None:
            return
        with contextlib.suppress(SupervisionRefused):
            await self._worker(listening.worker, "rtc_close", {"rtc_id": listening.rtc_id})
        if record:
            event = self._event(EventKind.SUPERVISOR_LEFT, supervisor=listening.supervisor, why=why)
            self.recorder.record(listening.call_id, [event])
            self._send(listening.supervisor, {"type": "left", "call_id": listening.call_id, "why": why})
        self._tell_agent(listening, gone=True)
        log.info("supervisor_left", call_id=listening.call_id, supervisor=listening.supervisor, why=why)
        self._floor_changed()

    def _tell_agent(self, listening: Listening, *, gone: bool = False) -> None:
        """The agent is told who listens, and how, only where the client's policy says so."""
        call = next((c for c in self.dispatcher.live_calls() if c.call.call_id == listening.call_id), None)
        if call is None:
            return
        client = self.tenant.clients.get(call.call.client_id)
        link = self.dispatcher.agent_link(call.agent)
        if client is None or not client.agent_sees_supervisor or link is None:
            return
        supervisor = self.tenant.supervisors[listening.supervisor]
        link.send(
            {
                "v": 1,
                "type": "supervision",
                "call_id": listening.call_id,
                "supervisor": supervisor.name,
                "mode": None if gone else listening.mode,
            }
        )

    async def _worker(self, worker: int, kind: str, body: Message) -> Message:
        try:
            return await self.workers.request(worker, kind, body, timeout=self.request_timeout_s)
        except Exception as exc:
            log.warning("supervision_worker_failed", kind=kind, error=str(exc))
            raise SupervisionRefused(
                "media_failed", f"The media worker could not {kind.replace('_', ' ')}.", 502
            ) from exc

    def _event(self, kind: str, **data: Any) -> TimelineEvent:
        return TimelineEvent(kind, self.clock.now(), self.clock.monotonic(), data)

    # ---- the wallboard ------------------------------------------------------------

    def _floor_changed(self) -> None:
        if self._push is not None or not self._links:
            return
        loop = asyncio.get_running_loop()
        self._push = loop.call_later(PUSH_DELAY_S, self._push_boards)

    def _push_boards(self) -> None:
        self._push = None
        task = asyncio.ensure_future(self._send_boards())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_boards(self) -> None:
        # Calls that ended take their supervisors' legs with them (the worker closed those).
        live = {c.call.call_id for c in self.dispatcher.live_calls()}
        for listening in [lst for lst in self._listening.values() if lst.call_id not in live]:
            await self._leave(listening, "call_ended")
        for login in list(self._links):
            self._send(login, await self.board(login))

    async def board(self, login: str) -> Message:
        """The wallboard for this supervisor's clients: queues, agents, calls, the last hour."""
        scope = self.scope(login)
        router = self.dispatcher.router
        now = self.clock.now()
        queues = []
        for queue in sorted(router.queues.values(), key=lambda q: q.id):
            if queue.client_id not in scope:
                continue
            waiting = [router.callers[c] for c in router.waiting(queue.id)]
            day = self.dispatcher.stats.queue(queue.id, now)
            queues.append(
                {
                    "id": queue.id,
                    "client": self._client_view(queue.client_id),
                    "waiting": len(waiting),
                    "longest_waiting_since": iso_z(min((c.arrived_at for c in waiting), default=None)),
                    "answered": day.answered,
                    "abandoned": day.abandoned,
                    "service_level": day.service_level,
                    "abandonment": day.abandonment,
                }
            )
        states = {a.login: a for a in await self.live.agents()}
        live_by_agent = {c.agent: c for c in self.dispatcher.live_calls()}
        no_shows = self.dispatcher.no_shows
        agents = []
        for login_, agent in sorted(self.tenant.agents.items()):
            if not any(agent.level_for(c) is not None for c in scope):
                continue
            state = states.get(login_)
            floor = router.agents[login_]
            call = live_by_agent.get(login_)
            agents.append(
                {
                    "login": login_,
                    "name": agent.name,
                    "state": state.state if state is not None else "logged_out",
                    "reason": state.reason if state is not None else None,
                    "since": iso_z(state.since) if state is not None else None,
                    "call": None if call is None or call.call.client_id not in scope else self._call_view(call),
                    "calls_today": floor.calls_today if floor.day == now.date() else 0,
                    "talk_s_today": round(floor.talk_s_today if floor.day == now.date() else 0.0, 1),
                    "no_shows": [iso_z(at) for at in no_shows.get(login_, []) if at.date() == now.date()],
                }
            )
        history = {
            client_id: [[iso_z(at), n] for at, n in self.dispatcher.stats.history(client_id)]
            for client_id in sorted(scope)
            if client_id in self.tenant.clients
        }
        return {
            "type": "board",
            "at": iso_z(now),
            "queues": queues,
            "agents": agents,
            "calls": self.calls(login),
            "listening": {lst.call_id: lst.mode for lst in self._listening.values() if lst.supervisor == login},
            "history": history,
        }

    def _client_view(self, client_id: str) -> Message:
        client = self.tenant.clients.get(client_id)
        name = client.name if client is not None else client_id
        listening = client.live_listening if client is not None else False
        return {"id": client_id, "name": name, "live_listening": listening}

    def _call_view(self, call: LiveCall) -> Message:
        agent = self.tenant.agents.get(call.agent)
        return {
            "call_id": call.call.call_id,
            "client": self._client_view(call.call.client_id),
            "agent": {"login": call.agent, "name": agent.name if agent is not None else call.agent},
            "answered_at": iso_z(call.answered_at),
            "held": call.held,
            "recording": self.dispatcher.recording_view(call.call),
        }

    async def stop(self) -> None:
        if self._push is not None:
            self._push.cancel()
        for task in list(self._tasks):
            task.cancel()
        for listening in list(self._listening.values()):
            await self._leave(listening, "bridge stopping")


def _mode_of(value: object) -> str:
    if value not in MODES:
        raise SupervisionRefused("bad_message", f"mode must be one of {', '.join(MODES)}", 400)
    return str(value)
