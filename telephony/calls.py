"""Calls as the control process sees them: admit, record, follow, close.

Workers ask `on_invite` what to do with each INVITE. The answer is sent
only once the call's record is committed, so no call is ever acknowledged
without a durable trace. After that each call has a session: one task that
applies the worker's reports to the record strictly in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from dialplan.call_caps import cap_refusal
from dialplan.clock import Clock
from dialplan.routing import Accept, Challenge, Credentials, InboundCall, Reject, route_inbound
from dialplan.tenant import Tenant
from dialplan.timeline import AFTER_CLOSE_KINDS, EventKind, TimelineEvent
from store.live_state import LiveState, QueueEntry
from store.records import CallRecords, NewCall
from telephony.dispatcher import OverflowStates, QueuedCall
from telephony.ipc import Body
from telephony.sip_digest import DigestAuthority
from telephony.sip_events import Refusal
from telephony.sip_message import (
    SipParseError,
    SipRequest,
    diverted_from,
    parse_name_addr,
    parse_request,
    uri_user,
)

log = structlog.get_logger("telephony.calls")

FRONT_SOURCE_HEADER = "x-hotline-source"
ANSWER_REPORT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ClientMedia:
    greeting: str | None
    music: str | None


@dataclass
class _Session:
    call_id: str
    worker: int
    leg: int
    queue_id: str | None
    client_id: str | None
    log: Any
    caller: str = ""
    line_id: str | None = None
    inbox: asyncio.Queue[tuple[str, Body]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    queued: bool = False
    # Who ended the call when the bridge hangs up on someone's behalf (an agent).
    ended_by_hint: str | None = None


class CallListener(Protocol):
    """Whoever offers queued calls to agents (the dispatcher)."""

    async def call_queued(self, call: QueuedCall) -> None: ...

    async def call_ended(self, call_id: str, ended_by: str) -> None: ...

    async def rtc_state(self, rtc_id: str, state: str) -> None: ...


def split_host_port(value: str) -> tuple[str, int]:
    """'1.2.3.4:5060' or '[::1]:5060' -> (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest.lstrip(":") or 0)
    host, _, port = value.rpartition(":")
    return host, int(port)


class CallService:
    def __init__(
        self,
        *,
        tenant: Tenant,
        records: CallRecords,
        live: LiveState,
        clock: Clock,
        media: Mapping[str, ClientMedia],
        digest: DigestAuthority,
        node: str,
        front: tuple[str, int] | None = None,
        retry_after_s: int = 5,
    ) -> None:
        self.tenant = tenant
        self.records = records
        self.live = live
        self.clock = clock
        self.media = media
        self.digest = digest
        self.node = node
        self.front = front
        self.retry_after_s = retry_after_s
        self._digest_users = {
            user: line.digest for user, line in tenant.lines_by_digest_user.items() if line.digest is not None
        }
        self._sessions: dict[str, _Session] = {}
        self.listener: CallListener | None = None
        # The lines' overflow states as the client admins left them; None: as in the tenant file.
        self.overflows: OverflowStates | None = None
        self._by_leg: dict[tuple[int, int], str] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # ---- admission --------------------------------------------------------

    def _event(
        self, kind: str, data: Mapping[str, Any] | None = None, *, mono: float | None = None, wall: float | None = None
    ) -> TimelineEvent:
        at = datetime.fromtimestamp(wall, UTC) if wall is not None else self.clock.now()
        return TimelineEvent(kind, at, mono if mono is not None else self.clock.monotonic(), dict(data or {}))

    def _true_source(self, packet_source: str, request: SipRequest) -> str:
        if self.front is not None:
            host, port = split_host_port(packet_source)
            if (host, port) == self.front:
                stamped = request.header(FRONT_SOURCE_HEADER)
                if stamped:
                    return stamped.split(";", 1)[0].strip()
        return packet_source

    async def on_invite(self, worker: int, body: Body) -> Body:
        try:
            return await self._admit(worker, body)
        except Exception:
            log.exception("call_admission_failed", worker=worker, sip_call_id=body.get("sip_call_id"))
            return {
                "action": "reject",
                "status": 503,
                "reason": "Service Unavailable",
                "headers": {"Retry-After": str(self.retry_after_s)},
            }

    async def _admit(self, worker: int, body: Body) -> Body:
        mono, wall = float(body["received_mono"]), float(body["received_wall"])
        try:
            request = parse_request(str(body["message"]))
            source = self._true_source(str(body["source"]), request)
            host, _port = split_host_port(source)
            source_ip = ipaddress.ip_address(host)
        except (SipParseError, ValueError) as exc:
            log.warning("call_unreadable_invite", worker=worker, error=str(exc))
            return {"action": "reject", "status": 400, "reason": "Bad Request"}

        did = uri_user(request.uri)
        caller = parse_name_addr(request.header("from") or "")
        verdict = self.digest.verify(
            request.method,
            request.header("proxy-authorization") or request.header("authorization"),
            self._digest_users,
        )
        authenticated_line = None
        if verdict.credentials is Credentials.VALID and verdict.username is not None:
            authenticated_line = self.tenant.lines_by_digest_user[verdict.username].id
        decision = route_inbound(
            self.tenant,
            InboundCall(did, source_ip, verdict.credentials, authenticated_line, diverted_from(request)),
            self.clock.now(),
            self.overflows.current() if self.overflows is not None else None,
        )
        if isinstance(decision, Challenge):
            log.info("call_challenged", did=did, source=source)
            return {
                "action": "reject",
                "status": 407,
                "reason": "Proxy Authentication Required",
                "headers": {"Proxy-Authenticate": self.digest.challenge()},
            }

        call_id = uuid.uuid4().hex
        client_id, line_id = decision.client_id, decision.line_id
        call_log = log.bind(call_id=call_id, client=client_id, did=did)
        new_call = NewCall(
            id=call_id,
            sip_call_id=str(body.get("sip_call_id", "")),
            caller=caller.user,
            caller_display=caller.display,
            did=did,
            source=source,
            client_id=client_id,
            line_id=line_id,
            worker=worker,
            node=self.node,
        )
        arrived = self._event(EventKind.ARRIVED, {"source": source, "worker": worker}, mono=mono, wall=wall)

        why = None
        if isinstance(decision, Accept) and (capped := self._over_cap(decision)) is not None:
            decision, why = capped
        if isinstance(decision, Reject):
            headers = {}
            if decision.retry_after_s is not None:
                headers["Retry-After"] = str(decision.retry_after_s)
            rejected = self._event(
                EventKind.REJECTED, {"status": decision.status, "reason": why or decision.reason}, mono=mono, wall=wall
            )
            await self.records.open_call(new_call, [arrived])
            await self.records.close(call_id, [rejected])
            call_log.info("call_rejected", status=decision.status, reason=decision.reason, source=source)
            return {
                "action": "reject",
                "call_id": call_id,
                "status": decision.status,
                "reason": decision.reason,
                "headers": headers,
            }

        assert isinstance(decision, Accept)
        session = _Session(
            call_id,
            worker,
            int(body["leg"]),
            decision.queue_id,
            decision.client_id,
            call_log,
            caller=caller.user,
            line_id=decision.line_id,
        )
        # Counted from now on (the caps), before the record is written: admissions overlap.
        self._sessions[call_id] = session
        self._by_leg[(worker, session.leg)] = call_id
        try:
            await self.records.open_call(new_call, [arrived])
        except BaseException:
            self._sessions.pop(call_id, None)
            self._by_leg.pop((worker, session.leg), None)
            raise
        session.task = asyncio.create_task(self._follow(session))
        call_log.info("call_arrived", caller=caller.user, source=source, line=decision.line_id)
        media = self.media.get(decision.client_id, ClientMedia(None, None))
        return {"action": "answer", "call_id": call_id, "greeting": media.greeting, "music": media.music}

    def _over_cap(self, accept: Accept) -> tuple[Reject, str] | None:
        line = next((line for line in self.tenant.lines if line.id == accept.line_id), None)
        if line is None:
            return None
        up = list(self._sessions.values())
        return cap_refusal(
            line,
            self.tenant.clients.get(accept.client_id),
            sum(s.line_id == line.id for s in up),
            sum(s.client_id == accept.client_id for s in up),
            self.retry_after_s,
        )

    # ---- events from workers ----------------------------------------------

    def record(self, call_id: str, events: Sequence[TimelineEvent]) -> None:
        """Append events to a live call's timeline, in order with the worker's reports; an ended call's
        timeline takes only what comes after it (its agent's wrap-up ending)."""
        session = self._sessions.get(call_id)
        if session is not None:
            session.inbox.put_nowait(("record", {"events": list(events)}))
        elif events and all(event.kind in AFTER_CLOSE_KINDS for event in events):
            self._spawn(self._record_after_close(call_id, list(events)))

    async def _record_after_close(self, call_id: str, events: list[TimelineEvent]) -> None:
        try:
            await self.records.after_close(call_id, events)
        except Exception as exc:
            log.warning("call_after_close_not_recorded", call_id=call_id, error=str(exc))

    def end_hint(self, call_id: str, by: str) -> None:
        session = self._sessions.get(call_id)
        if session is not None:
            session.ended_by_hint = by

    def on_worker_event(self, worker: int, kind: str, body: Body) -> None:
        if kind == "rtc_state":
            if self.listener is not None:
                self._spawn(self.listener.rtc_state(str(body.get("rtc_id")), str(body.get("state"))))
            return
        if kind in ("leg", "playback"):
            session = self._sessions.get(str(body.get("call_id")))
            if session is not None:
                session.inbox.put_nowait((kind, body))
        elif kind == "undecided":
            call_id = self._by_leg.get((worker, int(body.get("leg", -1))))
            session = self._sessions.get(call_id) if call_id else None
            if session is not None:
                session.inbox.put_nowait(("undecided", body))
        elif kind == "refused":
            self._spawn(self._record_worker_refusal(worker, body))
        else:
            log.warning("call_unknown_worker_event", worker=worker, kind=kind)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _record_worker_refusal(self, worker: int, body: Body) -> None:
        try:
            request = parse_request(str(body.get("message", "")))
            did, caller = uri_user(request.uri), parse_name_addr(request.header("from") or "")
            source = self._true_source(str(body.get("source", "")), request)
        except (SipParseError, ValueError):
            did, caller, source = "", parse_name_addr(""), str(body.get("source", ""))
        await self._record_refusal(
            Refusal(
                status=int(body.get("status", 503)),
                reason=str(body.get("reason", "")),
                sip_call_id=str(body.get("sip_call_id", "")),
                source=source,
                did=did,
                caller=caller.user,
                caller_display=caller.display,
                worker=worker,
                at_mono=float(body["at_mono"]),
                at_wall=float(body["at_wall"]),
            )
        )

    def on_front_refusal(self, refusal: Refusal) -> None:
        """The SIP front refused an INVITE itself (every worker full): record it too."""
        self._spawn(self._record_refusal(refusal))

    async def _record_refusal(self, refusal: Refusal) -> None:
        """Refused before admission, without a decision of ours: recorded after the fact."""
        # A refused call on a client's line is a call that client lost: say whose.
        line = self.tenant.line_for_did(refusal.did)
        call_id = uuid.uuid4().hex
        mono, wall = refusal.at_mono, refusal.at_wall
        await self.records.open_call(
            NewCall(
                id=call_id,
                sip_call_id=refusal.sip_call_id,
                caller=refusal.caller,
                caller_display=refusal.caller_display,
                did=refusal.did,
                source=refusal.source,
                client_id=line.client_id if line is not None else None,
                line_id=line.id if line is not None else None,
                worker=refusal.worker,
                node=self.node,
            ),
            [self._event(EventKind.ARRIVED, {"worker": refusal.worker}, mono=mono, wall=wall)],
        )
        rejected = {"status": refusal.status, "reason": refusal.reason}
        await self.records.close(call_id, [self._event(EventKind.REJECTED, rejected, mono=mono, wall=wall)])
        log.warning(
            "call_refused",
            call_id=call_id,
            did=refusal.did,
            worker=refusal.worker,
            status=refusal.status,
            reason=refusal.reason,
        )

    async def _follow(self, session: _Session) -> None:
        try:
            while True:
                try:
                    # A worker that never reports the answer lost the decision
                    # (it timed out and refused the call on its own).
                    async with asyncio.timeout(None if session.queued else ANSWER_REPORT_TIMEOUT_S):
                        kind, body = await session.inbox.get()
                except TimeoutError:
                    kind, body = "undecided", {}
                if await self._apply(session, kind, body):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            session.log.exception("call_session_failed")
            with contextlib.suppress(Exception):
                await self.records.close_interrupted(call_ids=[session.call_id], reason="session failed")
        finally:
            self._forget(session)

    def _forget(self, session: _Session) -> None:
        self._sessions.pop(session.call_id, None)
        self._by_leg.pop((session.worker, session.leg), None)

    async def _apply(self, session: _Session, kind: str, body: Body) -> bool:
        """Apply one report; True when the call is over."""
        mono, wall = body.get("at_mono"), body.get("at_wall")
        if kind == "record":
            events: list[TimelineEvent] = body["events"]
            await self.records.append(session.call_id, events)
            if any(event.kind == EventKind.ANSWERED for event in events):
                await self._leave_queue(session)
            for event in events:
                session.log.info("call_" + event.kind, **{k: v for k, v in event.data.items() if k == "agent"})
            return False
        if kind == "lost":
            await self.records.close_interrupted(call_ids=[session.call_id], reason=str(body["reason"]))
            await self._leave_queue(session)
            session.log.warning("call_interrupted", reason=body["reason"])
            self._ended(session, "bridge")
            return True
        if kind == "undecided":
            event = self._event(EventKind.REJECTED, {"status": 503, "reason": "no decision in time"})
            summary = await self.records.close(session.call_id, [event])
            session.log.warning("call_rejected", status=503, outcome=summary.outcome)
            self._ended(session, "bridge")
            return True
        if kind == "playback":
            what = body.get("what")
            if what not in ("greeting", "music"):
                # Music under hold: the dispatcher already recorded the hold itself.
                return False
            event_kind = EventKind.GREETING_STARTED if what == "greeting" else EventKind.MUSIC_STARTED
            await self.records.append(session.call_id, [self._event(event_kind, mono=mono, wall=wall)])
            session.log.info("call_" + event_kind.value)
            return False
        state = body.get("state")
        if state == "connecting" and not session.queued:
            session.queued = True
            events = [
                self._event(EventKind.ANSWERED_BY_BRIDGE, mono=mono, wall=wall),
                self._event(EventKind.QUEUED, {"queue": session.queue_id}, mono=mono, wall=wall),
            ]
            await self.records.append(session.call_id, events)
            queued_at = await self._join_queue(session, wall)
            session.log.info("call_queued", queue=session.queue_id)
            if self.listener is not None and session.client_id is not None:
                queued = QueuedCall(
                    session.call_id,
                    session.worker,
                    session.leg,
                    session.client_id,
                    session.caller,
                    queued_at,
                    queue_id=session.queue_id,
                    line_id=session.line_id,
                )
                self._spawn(self.listener.call_queued(queued))
            return False
        if state == "disconnected":
            by = session.ended_by_hint or ("caller" if body.get("ended_by") == "remote" else "bridge")
            event = self._event(EventKind.ENDED, {"by": by, "status": body.get("status")}, mono=mono, wall=wall)
            summary = await self.records.close(session.call_id, [event])
            await self._leave_queue(session)
            session.log.info(
                "call_ended",
                outcome=summary.outcome,
                ended_by=by,
                duration_s=round(summary.duration_s, 3),
                queue_wait_s=round(summary.queue_wait_s, 3),
            )
            self._ended(session, by)
            return True
        return False

    def _ended(self, session: _Session, by: str) -> None:
        if self.listener is not None:
            self._spawn(self.listener.call_ended(session.call_id, by))

    async def _join_queue(self, session: _Session, wall: object) -> datetime:
        at = datetime.fromtimestamp(float(wall), UTC) if isinstance(wall, int | float) else self.clock.now()
        if session.queue_id is not None and session.client_id is not None:
            entry = QueueEntry(
                call_id=session.call_id, client_id=session.client_id, enqueued_at=at, data={"node": self.node}
            )
            await self.live.enqueue(session.queue_id, entry)
        return at

    async def forget_queued_before_restart(self) -> int:
        """Drop this node's entries left in the shared queues by its previous run (its callers are gone);
        other nodes' callers keep their places."""
        dropped = 0
        for queue_id in await self.live.queue_ids():
            for entry in await self.live.entries(queue_id):
                if entry.data.get("node") == self.node and entry.call_id not in self._sessions:
                    dropped += await self.live.remove(queue_id, entry.call_id)
        return dropped

    async def _leave_queue(self, session: _Session) -> None:
        if session.queued and session.queue_id is not None:
            with contextlib.suppress(Exception):
                await self.live.remove(session.queue_id, session.call_id)

    # ---- failures and lifecycle -----------------------------------------------

    async def on_worker_lost(self, worker: int) -> None:
        """A worker died: every call it held ends as interrupted, after its pending reports."""
        sessions = [s for s in self._sessions.values() if s.worker == worker]
        for session in sessions:
            session.inbox.put_nowait(("lost", {"reason": f"worker {worker} died"}))
        await asyncio.gather(*(s.task for s in sessions if s.task is not None), return_exceptions=True)
        swept = await self.records.close_interrupted(worker=worker, node=self.node, reason=f"worker {worker} died")
        log.warning("worker_calls_interrupted", worker=worker, calls=len(sessions) + len(swept))

    async def on_worker_ready(self, worker: int, generation: int) -> None:
        return None

    def open_call_ids(self) -> list[str]:
        return list(self._sessions)

    async def heartbeat(self) -> None:
        ids = self.open_call_ids()
        if ids:
            await self.records.heartbeat(ids, self.clock.now(), self.clock.monotonic())

    async def wait_idle(self, timeout: float) -> bool:
        tasks = [s.task for s in self._sessions.values() if s.task is not None]
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def close_remaining(self, reason: str) -> int:
        sessions = list(self._sessions.values())
        for session in sessions:
            session.inbox.put_nowait(("lost", {"reason": reason}))
        await asyncio.gather(*(s.task for s in sessions if s.task is not None), return_exceptions=True)
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task
        return len(sessions)
