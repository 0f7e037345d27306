"""A media worker: one pjsua2 Endpoint, executing what the control process decides.

The worker decides nothing about calls. It forwards each INVITE to the
control process, waits (bounded) for the decision, carries it out, and
reports what happens to each leg. If the control process goes away the
worker hangs up its calls and exits: records can no longer be kept, and a
restarted control process closes them as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from telephony.ipc import Body, Channel, ChannelClosed
from telephony.loop_watch import log_loop_stalls
from telephony.sip_events import (
    AdapterError,
    AdapterEvent,
    AdapterSettings,
    InviteReceived,
    InviteRefused,
    LegChanged,
    LegGone,
    LegState,
    PlaybackStarted,
    PlayPlan,
    RegistrationChanged,
    RegistrationSpec,
)

if TYPE_CHECKING:
    from telephony.rtc_leg import RtcLeg

log = structlog.get_logger("telephony.worker")

_DTMF = re.compile(r"[0-9*#A-D]{1,32}")
# Every conference-port callback on the pjmedia clock thread must take the
# GIL; while asyncio runs Python (aiortc's codecs, the channel) the clock
# thread waits up to a switch interval for it, per callback. Measured with 8
# port callbacks per 20 ms tick against a busy thread: at CPython's default
# 5 ms the clock fell up to 90 ms behind and lost ticks; at 1 ms, none lost.
GIL_SWITCH_INTERVAL_S = 0.001
# A whisper to an agent is a word or two; a longer file is cut off here rather than keep the caller waiting.
WHISPER_LIMIT_S = 5.0


@dataclass(frozen=True)
class WorkerConfig:
    index: int
    adapter: AdapterSettings
    decision_timeout_s: float
    drain_timeout_s: float
    # Behind a SIP front, refusals are the front's to record (it fails over).
    behind_front: bool
    # The agents' WebRTC legs. ICE servers as RTCIceServer fields ("urls",
    # "username", "credential"); none by default, and never aiortc's implicit
    # public STUN server (without DNS it stalls every answer for 5 s).
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    # Addresses ICE host candidates are gathered on; empty: the public SIP host.
    rtc_host_addresses: list[str] = field(default_factory=list)
    # Codec forced on agent legs unless rtc_open names one: "PCMU" or "opus".
    rtc_codec: str = "PCMU"
    # Each direction of an agent leg buffers at most this many 20 ms frames.
    rtc_ring_frames: int = 8

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> WorkerConfig:
        data = json.loads(raw)
        data["adapter"] = AdapterSettings(**data["adapter"])
        return cls(**data)


class Worker:
    def __init__(self, config: WorkerConfig, adapter_factory: Any = None) -> None:
        self.config = config
        self._adapter_factory = adapter_factory
        self._channel: Channel | None = None
        self._calls: dict[int, str] = {}
        self._live_legs: set[int] = set()
        # Legs that ended while the control process was deciding: their end
        # is reported once the decision names the call.
        self._ended_undecided: dict[int, LegChanged] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rtc: dict[str, RtcLeg] = {}
        self._draining = False
        self._stop_requested = False
        self._idle = asyncio.Event()
        self._idle.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, ipc_fd: int) -> int:
        unwatch = log_loop_stalls(log)
        try:
            return await self._serve(ipc_fd)
        finally:
            unwatch()

    async def _serve(self, ipc_fd: int) -> int:
        sock = socket.socket(fileno=ipc_fd)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        channel = Channel(
            reader,
            writer,
            on_request=self._on_request,
            on_event=self._on_control_event,
            name=f"worker-{self.config.index}",
        )
        self._channel = channel
        reading = asyncio.create_task(channel.run())
        await self._configure_rtc()
        factory = self._adapter_factory
        if factory is None:
            from telephony.sip_adapter import SipAdapter

            factory = SipAdapter
        self.adapter = factory(
            self.config.adapter, self._on_adapter_event, refuse_stack_events=not self.config.behind_front
        )
        try:
            await self.adapter.start()
        except AdapterError as exc:
            log.error("worker_start_failed", error=str(exc))
            with contextlib.suppress(ChannelClosed):
                channel.notify("failed", {"index": self.config.index, "error": str(exc)})
                await channel.drain()
            await channel.close()
            return 1
        self._install_signals()
        channel.notify(
            "ready",
            {
                "index": self.config.index,
                "pid": os.getpid(),
                "sip_host": self.config.adapter.sip_host,
                "sip_port": self.config.adapter.sip_port,
                "capacity": self.config.adapter.capacity,
            },
        )
        await reading
        # The control process is gone (or told us to stop): nobody can keep records.
        if self._stop_requested:
            log.info("worker_stopping", legs=len(self._live_legs))
        else:
            log.warning("worker_control_lost", legs=len(self._live_legs))
        await self._shutdown(hangup=True)
        return 0

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        # Ctrl-C reaches the whole process group; the control process decides.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        loop.add_signal_handler(signal.SIGTERM, lambda: self._spawn(self._drain_and_exit()))

    async def _drain_and_exit(self) -> None:
        await self._drain(self.config.drain_timeout_s)
        if self._channel is not None:
            await self._channel.close()

    async def _drain(self, timeout: float) -> int:
        self._draining = True
        await self.adapter.set_draining(True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        left = len(self._live_legs)
        if left:
            await self.adapter.hangup_all()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._idle.wait()
        return left

    async def _configure_rtc(self) -> None:
        from telephony import rtc_leg

        hosts = list(self.config.rtc_host_addresses) or [self.config.adapter.public_host]
        try:
            addresses = await rtc_leg.resolve_host_addresses(hosts)
        except OSError as exc:
            log.error("rtc_host_addresses_unresolved", hosts=hosts, error=str(exc))
            addresses = []
        rtc_leg.use_host_addresses(addresses)
        log.info("rtc_configured", host_addresses=addresses, codec=self.config.rtc_codec)

    async def _shutdown(self, *, hangup: bool) -> None:
        for rtc_id in list(self._rtc):
            await self._close_rtc(rtc_id)
        if hangup and self._live_legs:
            with contextlib.suppress(AdapterError):
                await self.adapter.hangup_all()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    await self._idle.wait()
        await self.adapter.stop()

    # ---- control -> worker ---------------------------------------------

    async def _on_request(self, kind: str, body: Body) -> Body:
        if kind == "hangup":
            with contextlib.suppress(AdapterError):
                await self.adapter.hangup(int(body["leg"]))
            return {}
        if kind == "stats":
            stats = await self.adapter.stats()
            return {
                **asdict(stats),
                "rtc_legs": len(self._rtc),
                "rtc": [rtc.stats() for rtc in self._rtc.values()],
            }
        if kind in self._rtc_requests:
            return await self._rtc_requests[kind](self, body)
        if kind == "drain":
            left = await self._drain(float(body.get("timeout", self.config.drain_timeout_s)))
            return {"hung_up": left}
        if kind == "stop":
            self._stop_requested = True
            self._spawn(self._close_channel_soon())
            return {}
        raise ValueError(f"unknown request {kind!r}")

    # ---- agent legs ------------------------------------------------------

    def _rtc_leg(self, body: Body) -> RtcLeg:
        rtc_id = str(body["rtc_id"])
        rtc = self._rtc.get(rtc_id)
        if rtc is None:
            raise LegGone(f"no rtc leg {rtc_id!r} (closed, or its call ended)")
        if "leg" in body and int(body["leg"]) != rtc.leg:
            raise ValueError(f"rtc leg {rtc_id!r} belongs to leg {rtc.leg}, not {body['leg']}")
        return rtc

    async def _rtc_open(self, body: Body) -> Body:
        from telephony.rtc_leg import RtcError, RtcLeg

        leg, rtc_id, offer = int(body["leg"]), str(body["rtc_id"]), str(body["sdp"])
        if rtc_id in self._rtc:
            raise RtcError(f"rtc leg {rtc_id!r} is already open")
        if leg not in self._live_legs:
            raise LegGone(f"leg {leg} has ended")
        rtc = RtcLeg(
            rtc_id,
            leg,
            codec=str(body.get("codec") or self.config.rtc_codec),
            ice_servers=self.config.ice_servers,
            ring_frames=self.config.rtc_ring_frames,
            on_state=self._on_rtc_state,
        )
        self._rtc[rtc_id] = rtc
        try:
            await self.adapter.attach_agent(rtc_id, leg, rtc.shuttle)
            answer = await rtc.answer(offer)
        except BaseException:
            if self._rtc.get(rtc_id) is rtc:
                del self._rtc[rtc_id]
            with contextlib.suppress(AdapterError):
                await self.adapter.detach_agent(rtc_id)
            await rtc.close(report=False)
            raise
        return {"sdp": answer}

    async def _rtc_update(self, body: Body) -> Body:
        return {"sdp": await self._rtc_leg(body).update(str(body["sdp"]))}

    async def _bridge(self, body: Body) -> Body:
        rtc = self._rtc_leg(body)
        files = body.get("record")
        record = (Path(str(files["caller"])), Path(str(files["agent"]))) if isinstance(files, dict) else None
        await self.adapter.bridge_agent(rtc.rtc_id, record)
        rtc.set_media(bridged=True, held=False)
        return {}

    async def _record(self, body: Body) -> Body:
        """Record a bridged call from now on (on demand), each side to its own file."""
        rtc = self._rtc_leg(body)
        files = body["record"]
        if not isinstance(files, dict):
            raise ValueError("record: expected {caller, agent} file paths")
        await self.adapter.record_agent(rtc.rtc_id, (Path(str(files["caller"])), Path(str(files["agent"]))))
        return {}

    async def _whisper(self, body: Body) -> Body:
        rtc = self._rtc_leg(body)
        # The agent hears the prompt; the caller hears nothing of the agent yet.
        rtc.set_media(whispering=True)
        await asyncio.wait_for(self.adapter.whisper_agent(rtc.rtc_id, Path(str(body["path"]))), WHISPER_LIMIT_S)
        return {}

    async def _supervise(self, body: Body) -> Body:
        rtc = self._rtc_leg(body)
        agent = self._rtc_leg({"rtc_id": body["agent_rtc_id"]})
        if agent.leg != rtc.leg:
            raise ValueError(f"rtc leg {rtc.rtc_id!r} is not on the call of {agent.rtc_id!r}")
        mode = str(body["mode"])
        await self.adapter.supervise(rtc.rtc_id, agent.rtc_id, mode)
        rtc.set_media(supervising=mode)
        return {}

    async def _transfer(self, body: Body) -> Body:
        target = str(body["target"])
        if not target.startswith(("sip:", "sips:", "tel:")):
            raise ValueError(f"a transfer target is a SIP or tel URI, not {target[:60]!r}")
        await self.adapter.transfer(int(body["leg"]), target)
        return {}

    async def _register(self, body: Body) -> Body:
        spec = RegistrationSpec(
            key=str(body["key"]),
            registrar_uri=str(body["registrar_uri"]),
            aor=str(body["aor"]),
            username=str(body["username"]),
            password=str(body["password"]),
            realm=None if body.get("realm") is None else str(body["realm"]),
            expires_s=int(body.get("expires_s", 300)),
        )
        await self.adapter.register(spec)
        return {}

    async def _unregister(self, body: Body) -> Body:
        return {"unregistering": await self.adapter.unregister(str(body["key"]))}

    async def _hold(self, body: Body) -> Body:
        rtc = self._rtc_leg(body)
        on = bool(body["on"])
        await self.adapter.hold_agent(rtc.rtc_id, on)
        rtc.set_media(held=on)
        return {}

    async def _mute(self, body: Body) -> Body:
        rtc = self._rtc_leg(body)
        on = bool(body["on"])
        await self.adapter.mute_agent(rtc.rtc_id, on)
        rtc.set_media(muted=on)
        return {}

    async def _dtmf(self, body: Body) -> Body:
        digits = str(body["digits"])
        if not _DTMF.fullmatch(digits):
            raise ValueError(f"DTMF digits are 1 to 32 of 0-9 * # A-D, not {digits[:40]!r}")
        await self.adapter.send_dtmf(int(body["leg"]), digits)
        return {}

    async def _announce(self, body: Body) -> Body:
        prompt = body.get("path")
        leg = int(body["leg"])
        played = await self.adapter.announce(
            leg, Path(str(prompt)) if prompt else None, then_hang_up=bool(body.get("then_hang_up"))
        )
        return {"played": played}

    async def _rtc_close(self, body: Body) -> Body:
        return {"closed": await self._close_rtc(str(body["rtc_id"]))}

    _rtc_requests = {
        "rtc_open": _rtc_open,
        "rtc_update": _rtc_update,
        "bridge": _bridge,
        "hold": _hold,
        "mute": _mute,
        "dtmf": _dtmf,
        "rtc_close": _rtc_close,
        "announce": _announce,
        "whisper": _whisper,
        "record": _record,
        "supervise": _supervise,
        "register": _register,
        "transfer": _transfer,
        "unregister": _unregister,
    }

    async def _close_rtc(self, rtc_id: str) -> bool:
        rtc = self._rtc.pop(rtc_id, None)
        if rtc is None:
            return False
        # The port first: the caller goes back to music at once.
        with contextlib.suppress(AdapterError):
            await self.adapter.detach_agent(rtc_id)
        await rtc.close()
        return True

    def _on_rtc_state(self, rtc: RtcLeg, state: str) -> None:
        if state == "closed" and self._rtc.get(rtc.rtc_id) is rtc:
            # Closed from the browser's side: give the port back.
            self._spawn(self._close_rtc(rtc.rtc_id))
        body: Body = {"rtc_id": rtc.rtc_id, "state": state, "leg": rtc.leg, "at_mono": time.monotonic()}
        body["at_wall"] = time.time()
        call_id = self._calls.get(rtc.leg)
        if call_id is not None:
            body["call_id"] = call_id
        self._notify("rtc_state", body)

    async def _close_channel_soon(self) -> None:
        await asyncio.sleep(0)
        if self._channel is not None:
            await self._channel.close()

    def _on_control_event(self, kind: str, body: Body) -> None:
        log.warning("worker_unexpected_event", kind=kind)

    # ---- adapter -> control --------------------------------------------

    def _notify(self, kind: str, body: Body) -> None:
        if self._channel is None:
            return
        with contextlib.suppress(ChannelClosed):
            self._channel.notify(kind, body)

    def _on_adapter_event(self, event: AdapterEvent) -> None:
        if isinstance(event, InviteReceived):
            self._live_legs.add(event.invite.leg)
            self._idle.clear()
            self._spawn(self._decide(event))
        elif isinstance(event, InviteRefused):
            if not self.config.behind_front:
                self._notify("refused", asdict(event))
        elif isinstance(event, LegChanged):
            self._on_leg_changed(event)
        elif isinstance(event, PlaybackStarted):
            call_id = self._calls.get(event.leg)
            if call_id is not None:
                self._notify("playback", {**asdict(event), "call_id": call_id})
        elif isinstance(event, RegistrationChanged):
            self._notify("registration", asdict(event))

    def _on_leg_changed(self, event: LegChanged) -> None:
        call_id = self._calls.get(event.leg)
        if event.state is LegState.DISCONNECTED:
            for rtc_id in [rtc.rtc_id for rtc in self._rtc.values() if rtc.leg == event.leg]:
                self._spawn(self._close_rtc(rtc_id))
            self._calls.pop(event.leg, None)
            if call_id is None and event.leg in self._live_legs:
                self._ended_undecided[event.leg] = event
            self._live_legs.discard(event.leg)
            if not self._live_legs:
                self._idle.set()
        if call_id is not None:
            self._notify("leg", {**asdict(event), "state": event.state.value, "call_id": call_id})

    async def _decide(self, event: InviteReceived) -> None:
        invite = event.invite
        assert self._channel is not None
        try:
            decision = await self._channel.request("invite", asdict(invite), timeout=self.config.decision_timeout_s)
        except (TimeoutError, ChannelClosed) as exc:
            log.error("worker_no_decision", leg=invite.leg, sip_call_id=invite.sip_call_id, error=repr(exc))
            self._ended_undecided.pop(invite.leg, None)
            self._notify("undecided", {"leg": invite.leg, "sip_call_id": invite.sip_call_id})
            with contextlib.suppress(AdapterError):
                await self.adapter.reject(
                    invite.leg,
                    503,
                    "Service Unavailable",
                    {"Retry-After": str(self.config.adapter.retry_after_s)},
                )
            return
        call_id = decision.get("call_id")
        ended = self._ended_undecided.pop(invite.leg, None)
        if isinstance(call_id, str):
            if ended is not None:
                self._notify("leg", {**asdict(ended), "state": ended.state.value, "call_id": call_id})
                return
            self._calls[invite.leg] = call_id
        if ended is not None:
            return
        try:
            if decision.get("action") == "answer":
                plan = PlayPlan(greeting=_path(decision.get("greeting")), music=_path(decision.get("music")))
                await self.adapter.answer(invite.leg, plan)
            else:
                await self.adapter.reject(
                    invite.leg,
                    int(decision["status"]),
                    str(decision.get("reason", "")),
                    {str(k): str(v) for k, v in (decision.get("headers") or {}).items()},
                )
        except AdapterError as exc:
            # Typically the caller cancelled while we decided; the leg event says so.
            log.info("worker_decision_not_applied", leg=invite.leg, error=str(exc))


def _path(value: object) -> Path | None:
    return Path(value) if isinstance(value, str) and value else None


def run_worker(config_json: str, ipc_fd: int) -> int:
    # Imported before the event loop runs: loading pjsua2 (and aiortc) takes a
    # good part of a second when several workers start at once, and would
    # block the loop.
    import telephony.rtc_leg  # noqa: F401
    from telephony.sip_adapter import SipAdapter

    config = WorkerConfig.from_json(config_json)
    structlog.contextvars.bind_contextvars(worker=config.index)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    return asyncio.run(Worker(config, SipAdapter).run(ipc_fd))
