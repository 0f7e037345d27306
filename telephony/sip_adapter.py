"""The one place that touches pjsua2, from the one thread that owns it.

pjsua2 runs in poll mode on a dedicated thread: the Endpoint is created,
polled and destroyed there, callbacks arrive there, and asyncio reaches it
only through a command queue drained between polls. Results and events go
back with `loop.call_soon_threadsafe`. Why so strict: a pj call (or the
garbage collection of a pj object) from a thread pjsua doesn't know aborts
the process, and a late `~Call()` acts on a call id pjsua has already
reused, hanging up somebody else's call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pjsua2 as pj  # noqa: TID251 - this module is the adapter
import structlog

from telephony import rtp_strict_source
from telephony.media_shuttle import FRAME_BYTES, FRAME_MS, RATE, Shuttle
from telephony.rtp_strict_source import MediaPin
from telephony.sip_events import (
    AdapterError,
    AdapterEvent,
    AdapterSettings,
    AdapterStats,
    InviteInfo,
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

T = TypeVar("T")

log = structlog.get_logger("telephony.sip")
pjlog = structlog.get_logger("pjsip")

POLL_MS = 10
# How often each call's pinned media sockets are checked (pjmedia may re-create one after receive errors).
PIN_CHECK_S = 1.0
_STATE_NAMES = {
    pj.PJSIP_INV_STATE_EARLY: LegState.EARLY,
    pj.PJSIP_INV_STATE_CONNECTING: LegState.CONNECTING,
    pj.PJSIP_INV_STATE_CONFIRMED: LegState.CONFIRMED,
    pj.PJSIP_INV_STATE_DISCONNECTED: LegState.DISCONNECTED,
}


# ---- moving frame bytes in and out of pjsua2 without a SWIG call --------------
#
# The bindings are built with threads: every SWIG call releases the GIL and
# takes it back. On the clock thread, each release lets a busy asyncio thread
# keep the GIL for a whole switch interval (5 ms measured per call), and a
# frame written through SWIG takes four calls. So the port callbacks touch
# the frame through its memory instead, once that memory is checked to be laid
# out as assumed (`_probe_frame_io`): pj::MediaFrame is
# {pjmedia_frame_type type; ByteVector buf; unsigned size;} and a libstdc++
# std::vector is {start, finish, end_of_storage}. Measured per 320-byte frame
# inside the callbacks: reading with bytes(frame.buf) 265-375 us, this way
# 11-20 us; writing with frame.buf = ByteVector(data) ~70 us, and 5-10 ms
# whenever another thread was busy, this way ~40 us, busy thread or not.

_FRAME_TYPE_OFFSET = 0
_FRAME_BUF_OFFSET = 8
_FRAME_SIZE_OFFSET = 32
_AUDIO_FRAME = ctypes.c_char * FRAME_BYTES


class _VectorHeader(ctypes.Structure):
    _fields_ = [("start", ctypes.c_void_p), ("finish", ctypes.c_void_p), ("end_of_storage", ctypes.c_void_p)]


FrameReader = Callable[[Any], "bytes | None"]
FrameWriter = Callable[[Any, bytes], None]


def _operator_new() -> Callable[[int], int] | None:
    """libstdc++'s `operator new(size_t)` as seen by the pjsua2 module, callable without releasing the GIL."""
    spec = importlib.util.find_spec("pjsua2._pjsua2")
    if spec is None or spec.origin is None:
        return None
    try:
        new = ctypes.PyDLL(spec.origin)._Znwm
    except (OSError, AttributeError):
        return None
    new.restype = ctypes.c_void_p
    new.argtypes = [ctypes.c_size_t]
    return new


def _read_frame_slow(frame: Any) -> bytes | None:
    if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO:
        return None
    return bytes(frame.buf) or None


def _write_frame_slow(frame: Any, data: bytes) -> None:
    frame.buf = pj.ByteVector(data)
    frame.size = len(data)
    frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO


def _fast_frame_io(new: Callable[[int], int]) -> tuple[FrameReader, FrameWriter]:
    audio = int(pj.PJMEDIA_FRAME_TYPE_AUDIO)
    int_at = ctypes.c_int.from_address
    vector_at = _VectorHeader.from_address
    frame_at = _AUDIO_FRAME.from_address
    string_at = ctypes.string_at  # a PYFUNCTYPE: keeps the GIL

    def read(frame: Any) -> bytes | None:
        address = int(frame.this)
        if int_at(address + _FRAME_TYPE_OFFSET).value != audio:
            return None
        vector = vector_at(address + _FRAME_BUF_OFFSET)
        start = vector.start
        if not start:
            return None
        return string_at(start, vector.finish - start)

    def write(frame: Any, data: bytes) -> None:
        address = int(frame.this)
        vector = vector_at(address + _FRAME_BUF_OFFSET)
        if vector.start or len(data) != FRAME_BYTES:
            # Not the fresh empty vector pjsua2 hands out: replacing it would leak.
            _write_frame_slow(frame, data)
            return
        # pjsua2 frees this buffer with operator delete when its MediaFrame goes.
        buffer = new(FRAME_BYTES)
        frame_at(buffer).raw = data
        vector.start = buffer
        vector.finish = vector.end_of_storage = buffer + FRAME_BYTES
        int_at(address + _FRAME_TYPE_OFFSET).value = audio

    return read, write


def _probe_frame_io() -> tuple[FrameReader, FrameWriter, bool]:
    """The fast frame access if this build's memory layout is the one assumed, else pjsua2's own (slow) one."""
    new = _operator_new()
    if new is not None:
        read, write = _fast_frame_io(new)
        pattern = bytes(range(256)) + bytes(range(FRAME_BYTES - 256))
        try:
            known = pj.MediaFrame()
            known.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            known.size = FRAME_BYTES
            known.buf = pj.ByteVector(pattern)
            size_seen = ctypes.c_uint.from_address(int(known.this) + _FRAME_SIZE_OFFSET).value
            read_ok = read(known) == pattern and size_seen == FRAME_BYTES
            fresh = pj.MediaFrame()
            was_empty = fresh.buf.size() == 0
            if read_ok and was_empty:
                write(fresh, pattern[::-1])
                written = fresh.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and bytes(fresh.buf) == pattern[::-1]
                # Dropping it frees our buffer the way pjsua2 will: with operator delete.
                del fresh
                if written:
                    return read, write, True
        except Exception as exc:
            log.warning("frame_io_probe_failed", error=repr(exc))
    log.warning("frame_io_slow_path", why="pjsua2's MediaFrame layout is not the one the fast path assumes")
    return _read_frame_slow, _write_frame_slow, False


def _pj_message(exc: BaseException) -> str:
    if isinstance(exc, pj.Error):
        return f"{exc.title}: {exc.reason}" if exc.title else str(exc.reason)
    return str(exc)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """pjlib prints its banner to fd 1 before any log setting applies."""
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    def write(self, entry: Any) -> None:
        level = int(entry.level)
        message = str(entry.msg).rstrip()
        if level <= 1:
            pjlog.error(message)
        elif level == 2:
            pjlog.warning(message)
        elif level == 3:
            pjlog.info(message)
        else:
            pjlog.debug(message)


class _Call(pj.Call):  # type: ignore[misc]
    # Holds only its leg number and the adapter: no reference cycle, so the
    # object dies exactly when the adapter drops it, on the pjsua thread.
    def __init__(self, adapter: SipAdapter, account: pj.Account, pj_call_id: int, leg: int) -> None:
        super().__init__(account, pj_call_id)
        self.adapter = adapter
        self.leg = leg

    def onCallState(self, prm: Any) -> None:
        self.adapter._guard(self.adapter._on_call_state, self)

    def onCallMediaState(self, prm: Any) -> None:
        self.adapter._guard(self.adapter._on_call_media_state, self)

    def onCallTransferStatus(self, prm: Any) -> None:
        self.adapter._guard(self.adapter._on_transfer_status, self, prm)

    # pjsua's defaults would follow a caller's REFER (dial its Refer-To) and let an INVITE with
    # Replaces take over a call: both are toll-fraud paths. The bridge places no call a caller asks for.
    def onCallTransferRequest(self, prm: Any) -> None:
        prm.statusCode = 603
        self.adapter._guard(self.adapter._on_refused_takeover, self, "REFER", str(prm.dstUri))

    def onCallReplaceRequest(self, prm: Any) -> None:
        prm.statusCode = 603
        prm.reason = "Decline"
        self.adapter._guard(self.adapter._on_refused_takeover, self, "Replaces", "")


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, adapter: SipAdapter) -> None:
        super().__init__()
        self.adapter = adapter

    def onIncomingCall(self, prm: Any) -> None:
        self.adapter._guard(self.adapter._on_incoming_call, self, prm)


class _RegAccount(_Account):
    """The bridge registered as a client's line; calls the registrar sends to it are taken as any other."""

    def __init__(self, adapter: SipAdapter, key: str) -> None:
        super().__init__(adapter)
        self.key = key

    def onRegState(self, prm: Any) -> None:
        self.adapter._guard(self.adapter._on_reg_state, self, prm)


class _Endpoint(pj.Endpoint):  # type: ignore[misc]
    def __init__(self, adapter: SipAdapter) -> None:
        super().__init__()
        self.adapter = adapter

    def onRejectedIncomingCall(self, prm: Any) -> None:
        self.adapter._guard(self.adapter._on_rejected_incoming, prm)


class _GreetingPlayer(pj.AudioMediaPlayer):  # type: ignore[misc]
    def __init__(self, adapter: SipAdapter, leg: int) -> None:
        super().__init__()
        self.adapter = adapter
        self.leg = leg

    def onEof2(self) -> None:
        # May run on the media clock thread: only hand the work to the poll loop.
        leg = self.leg
        self.adapter._defer(lambda: self.adapter._on_prompt_end(leg))


def _link(source: Any, sink: Any, *, on: bool) -> None:
    """Connect or disconnect one direction in the conference bridge; either is idempotent."""
    if on:
        source.startTransmit(sink)
    else:
        with contextlib.suppress(pj.Error):
            source.stopTransmit(sink)


class _WhisperPlayer(pj.AudioMediaPlayer):  # type: ignore[misc]
    """A prompt for one agent leg's ears only; `done` resolves when it has played (or can't)."""

    def __init__(self, adapter: SipAdapter, key: str, done: Future[None]) -> None:
        super().__init__()
        self.adapter = adapter
        self.key = key
        self.done = done

    def onEof2(self) -> None:
        key = self.key
        self.adapter._defer(lambda: self.adapter._end_whisper(key))


class _AgentPort(pj.AudioMediaPort):  # type: ignore[misc]
    """A conference port that shuttles an agent leg's audio; pooled, reused, never destroyed while pjsua runs.

    Both callbacks run on the pjmedia clock thread, every 20 ms, for as long as
    the port is registered in the bridge: with no shuttle they do nothing.
    """

    def __init__(self, number: int, read: FrameReader, write: FrameWriter) -> None:
        super().__init__()
        self.number = number
        self.shuttle: Shuttle | None = None
        self._read = read
        self._write = write
        self.errors = 0
        self.first_error: str | None = None

    def onFrameReceived(self, frame: Any) -> None:
        # The caller's side of the conference, on its way to the agent.
        shuttle = self.shuttle
        if shuttle is None:
            return
        try:
            data = self._read(frame)
            if data is not None and len(data) == FRAME_BYTES:
                shuttle.to_agent.push(data)
        except Exception:
            self._failed("onFrameReceived")

    def onFrameRequested(self, frame: Any) -> None:
        # The agent's voice, on its way to the caller. Left untouched, the
        # frame stays of type NONE: the bridge mixes in nothing (silence).
        shuttle = self.shuttle
        if shuttle is None:
            return
        try:
            data = shuttle.to_caller.pop_or_none()
            if data is not None:
                self._write(frame, data)
        except Exception:
            self._failed("onFrameRequested")

    def _failed(self, where: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{where}: {traceback.format_exc(limit=-3)}"
            log.exception("agent_port_callback_failed", port=self.number, callback=where)


@dataclass
class _AgentUse:
    """An agent leg's hold on a pooled port, and what is connected in the bridge for it."""

    key: str
    leg: int
    port: _AgentPort
    bridged: bool = False
    held: bool = False
    muted: bool = False
    # A supervisor's port: the agent leg it listens to, and how (listen, whisper or barge).
    supervising: str | None = None
    mode: str | None = None


SUPERVISION_MODES = ("listen", "whisper", "barge")


@dataclass
class _Leg:
    leg: int
    call: _Call
    plan: PlayPlan | None = None
    greeting: _GreetingPlayer | None = None
    hearing: str | None = None
    music: Path | None = None
    # The caller's side and the agent's, while the call is recorded; closed (finalised) with the call.
    recorders: list[Any] = field(default_factory=list)
    # An announcement due once the greeting (or the announcement playing) ends: the latest one wins.
    next_prompt: Path | None = None
    hang_up_after_prompt: bool = False
    agents: set[str] = field(default_factory=set)
    local_hangup: bool = False
    refused: bool = False
    media_up: bool = False
    # The media sockets pinned to the peer the SDP declared, checked again every PIN_CHECK_S.
    pins: list[MediaPin] = field(default_factory=list)
    # Local ports whose pin failed: counted and logged once, tried again at each check.
    pins_failed: set[int] = field(default_factory=set)
    announced: set[LegState] = field(default_factory=set)


class SipAdapter:
    """Owns the pjsua2 Endpoint. Every public coroutine is safe to call from asyncio."""

    def __init__(
        self,
        settings: AdapterSettings,
        on_event: Callable[[AdapterEvent], None],
        *,
        refuse_stack_events: bool = True,
    ) -> None:
        self.settings = settings
        self._on_event = on_event
        self._report_stack_refusals = refuse_stack_events
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready: Future[None] = Future()
        self._stopped: Future[None] = Future()
        self._stop_requested = False
        # Everything below is touched only on the pjsua thread.
        self._ep: _Endpoint | None = None
        self._account: _Account | None = None
        # Registration takeovers by key (a line id). Kept after unregistering: a call that
        # came in through one may still be up, and a later takeover re-registers the same.
        self._registrations: dict[str, _RegAccount] = {}
        self._log_writer: _LogWriter | None = None
        self._legs: dict[int, _Leg] = {}
        self._music: dict[Path, pj.AudioMediaPlayer] = {}
        self._graveyard: list[Any] = []
        self._next_leg = 1
        self._draining = False
        self._ports: list[_AgentPort] = []
        self._free_ports: list[_AgentPort] = []
        self._agents: dict[str, _AgentUse] = {}
        self._whispers: dict[str, _WhisperPlayer] = {}
        self._read_frame: FrameReader = _read_frame_slow
        self._write_frame: FrameWriter = _write_frame_slow
        self._fast_frames = False
        self._pinner = rtp_strict_source.Pinner()
        self._pins_made = 0
        self._pin_failures = 0
        self._next_pin_check = 0.0

    # ---- asyncio side -------------------------------------------------

    async def start(self) -> None:
        """Start the pjsua thread; raises AdapterError if pjsua can't start (e.g. port in use)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._thread_main, name="pjsua", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(self._ready)

    async def stop(self) -> None:
        """Hang up whatever is left, destroy the Endpoint, join the thread."""
        if self._thread is None:
            return
        self._stop_requested = True
        await asyncio.wrap_future(self._stopped)
        await asyncio.to_thread(self._thread.join, 5)
        self._thread = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._thread is None or self._stopped.done():
            raise AdapterError("the SIP stack is not running")
        fut: Future[T] = Future()
        self._commands.put((fn, fut))
        return await asyncio.wrap_future(fut)

    async def answer(self, leg: int, plan: PlayPlan, status: int = 200) -> None:
        await self._run(lambda: self._answer(leg, plan, status))

    async def reject(self, leg: int, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        await self._run(lambda: self._hangup(leg, status, reason, headers or {}))

    async def hangup(self, leg: int) -> None:
        await self._run(lambda: self._hangup(leg, 0, "", {}))

    async def hangup_all(self) -> int:
        return await self._run(self._hangup_all)

    async def set_draining(self, draining: bool) -> None:
        def apply() -> None:
            self._draining = draining

        await self._run(apply)

    async def stats(self) -> AdapterStats:
        return await self._run(self._stats)

    # Agent legs: `key` names one (the control process's rtc_id); each gets a
    # pooled conference port whose callbacks shuttle frames through `shuttle`.

    async def attach_agent(self, key: str, leg: int, shuttle: Shuttle) -> None:
        """Give the agent leg a port; nothing is connected yet (the caller keeps hearing the greeting or music)."""
        await self._run(lambda: self._attach_agent(key, leg, shuttle))

    async def bridge_agent(self, key: str, record: tuple[Path, Path] | None = None) -> None:
        """Caller and agent hear each other; the caller's greeting or music stops.

        `record`: WAV files for the caller's side and the agent's, each recorded on its own
        (so voice activity can be told apart), from now until the call ends."""
        await self._run(lambda: self._bridge_agent(key, record))

    async def record_agent(self, key: str, files: tuple[Path, Path]) -> None:
        """Record the agent's call from now on (on demand); a no-op if it is already recorded."""
        await self._run(lambda: self._record_agent(key, files))

    async def hold_agent(self, key: str, on: bool) -> None:
        """On: both directions cut and the caller hears music. Off: back to talking."""
        await self._run(lambda: self._hold_agent(key, on))

    async def mute_agent(self, key: str, on: bool) -> None:
        """On: the caller stops hearing the agent."""
        await self._run(lambda: self._mute_agent(key, on))

    async def whisper_agent(self, key: str, prompt: Path) -> None:
        """Play `prompt` to the agent leg only (the caller keeps hearing their music); return once played."""
        done: Future[None] = Future()
        await self._run(lambda: self._whisper(key, prompt, done))
        await asyncio.wrap_future(done)

    async def supervise(self, key: str, agent_key: str, mode: str) -> None:
        """Put the supervisor leg `key` on the call of agent leg `agent_key`, or change how.

        listen: hears the caller and the agent, heard by no one; whisper: the
        agent hears them too; barge: everyone does. A change of mode is only a
        change of connections in the conference bridge: nothing is renegotiated.
        """
        await self._run(lambda: self._supervise(key, agent_key, mode))

    async def register(self, spec: RegistrationSpec) -> None:
        """Register with the client's registrar (re-registering before expiry is pjsua's job);
        the outcome arrives as RegistrationChanged events."""
        await self._run(lambda: self._register(spec))

    async def unregister(self, key: str) -> bool:
        """REGISTER with Expires: 0; calls that came in through the registration carry on. False: none."""
        return await self._run(lambda: self._unregister(key))

    async def detach_agent(self, key: str) -> bool:
        """Return the port to the pool; a caller still there goes back to music. False if already gone."""
        return await self._run(lambda: self._detach_agent(key))

    async def send_dtmf(self, leg: int, digits: str) -> None:
        """RFC 4733 telephone events to the caller."""
        await self._run(lambda: self._send_dtmf(leg, digits))

    async def transfer(self, leg: int, target: str) -> None:
        """Blind transfer (REFER) of the caller to `target`; the leg is hung up once the caller's
        new call is answered, and kept (with its music) if the transfer fails."""
        await self._run(lambda: self._transfer(leg, target))

    async def announce(self, leg: int, prompt: Path | None, *, then_hang_up: bool = False) -> bool:
        """Play `prompt` to a waiting caller in place of the music, then back to the music (or hang up).

        Never over another prompt or the greeting: it waits for them to end.
        Never over an agent: a caller already talking to one (or on hold)
        hears nothing, and False is returned.
        """
        return await self._run(lambda: self._announce(leg, prompt, then_hang_up))

    # ---- pjsua thread -------------------------------------------------

    def _post(self, event: AdapterEvent) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._on_event, event)

    def _defer(self, fn: Callable[[], None]) -> None:
        self._commands.put((fn, Future()))

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        # An exception escaping a pjsua2 callback unwinds through C++; keep it here.
        try:
            fn(*args)
        except Exception:
            log.exception("sip_callback_failed", callback=getattr(fn, "__name__", "?"))

    def _thread_main(self) -> None:
        try:
            self._init_endpoint()
        except Exception as exc:
            self._ready.set_exception(AdapterError(_pj_message(exc)))
            self._teardown()
            self._stopped.set_result(None)
            return
        self._ready.set_result(None)
        try:
            self._poll_until_stopped()
        finally:
            self._teardown()
            self._stopped.set_result(None)

    def _init_endpoint(self) -> None:
        s = self.settings
        ep = _Endpoint(self)
        self._ep = ep
        with _quiet_stdout():
            ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = s.user_agent
        # Capacity above pjsua's compiled ceiling is clamped by pjsua itself.
        cfg.uaConfig.maxCalls = max(s.capacity + 1, 4)
        self._log_writer = _LogWriter()
        cfg.logConfig.writer = self._log_writer
        cfg.logConfig.level = s.pjsip_log_level
        cfg.logConfig.consoleLevel = s.pjsip_log_level
        cfg.logConfig.decor = pj.PJ_LOG_HAS_SENDER
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.noVad = True
        # With auto-close on, the null device's clock stops, port removals
        # never complete, and every call after about a thousand is refused.
        cfg.medConfig.sndAutoCloseTime = -1
        cfg.medConfig.audioFramePtime = FRAME_MS
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        for codec, priority in (("PCMU/8000", 255), ("PCMA/8000", 254), ("G722/16000", 200)):
            with contextlib.suppress(pj.Error):
                ep.codecSetPriority(codec, priority)
        tcfg = pj.TransportConfig()
        tcfg.port = s.sip_port
        tcfg.boundAddress = s.sip_host
        tcfg.publicAddress = s.public_host
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, tcfg)
        ep.libStart()
        self._read_frame, self._write_frame, self._fast_frames = _probe_frame_io()
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:hotline@{s.public_host}:{s.sip_port}"
        media = acfg.mediaConfig.transportConfig
        media.port = s.rtp_port
        media.portRange = s.rtp_port_range
        media.boundAddress = s.sip_host
        media.publicAddress = s.public_host
        account = _Account(self)
        account.create(acfg, True)
        self._account = account
        self._media_config = acfg.mediaConfig
        log.info("sip_started", host=s.sip_host, port=s.sip_port, capacity=s.capacity)

    def _poll_until_stopped(self) -> None:
        assert self._ep is not None
        ep = self._ep
        while not self._stop_requested:
            ep.libHandleEvents(POLL_MS)
            self._drain_commands()
            self._bury()
            if self._legs and time.monotonic() >= self._next_pin_check:
                self._next_pin_check = time.monotonic() + PIN_CHECK_S
                self._check_pins()

    def _drain_commands(self) -> None:
        while True:
            try:
                fn, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except Exception as exc:
                fut.set_exception(exc if isinstance(exc, AdapterError) else AdapterError(_pj_message(exc)))

    def _bury(self) -> None:
        # Objects whose callbacks may still be on the stack are destroyed
        # here, after libHandleEvents has returned.
        if self._graveyard:
            self._graveyard.clear()

    def _teardown(self) -> None:
        ep = self._ep
        if ep is None:
            return
        with contextlib.suppress(Exception):
            ep.hangupAllCalls()
            # Unregister too: once the bridge is gone, the client's own phones must get the calls.
            for account in self._registrations.values():
                with contextlib.suppress(pj.Error):
                    account.setRegistration(False)
            deadline = time.monotonic() + 2.0
            while (self._legs or self._registering()) and time.monotonic() < deadline:
                ep.libHandleEvents(POLL_MS)
        with contextlib.suppress(Exception):
            ep.audDevManager().setNoDev()
        # Dropped here, before libDestroy: a port still referenced (even by a
        # loop variable) is destroyed after it and aborts in pjmedia_conf_remove_port.
        self._agents.clear()
        self._free_ports.clear()
        self._ports.clear()
        self._legs.clear()
        self._music.clear()
        self._graveyard.clear()
        self._registrations.clear()
        self._account = None
        while not self._commands.empty():
            _, fut = self._commands.get_nowait()
            if fut.set_running_or_notify_cancel():
                fut.set_exception(AdapterError("the SIP stack stopped"))
        with contextlib.suppress(Exception):
            ep.libDestroy()
        self._ep = None
        log.info("sip_stopped")

    # ---- callbacks (pjsua thread) --------------------------------------

    def _on_incoming_call(self, account: _Account, prm: Any) -> None:
        leg_no = self._next_leg
        self._next_leg += 1
        call = _Call(self, account, prm.callId, leg_no)
        leg = _Leg(leg_no, call)
        self._legs[leg_no] = leg
        rdata = prm.rdata
        message = str(rdata.wholeMsg)
        info = call.getInfo()
        now_mono, now_wall = time.monotonic(), time.time()
        busy = len(self._legs) - 1 >= self.settings.capacity
        if self._draining or busy:
            leg.refused = True
            reason = "Service Unavailable"
            headers = {"Retry-After": str(self.settings.retry_after_s)}
            # Not from inside onIncomingCall: there pjsua only notes a pending
            # hangup and later sends the final response without our headers
            # (the 503 lost its Retry-After). Once libHandleEvents has returned
            # the INVITE session exists and hangup() sends them. A CANCEL in
            # between makes the deferred hangup find the leg gone, which is fine.
            self._defer(lambda: self._hangup(leg_no, 503, reason, headers))
            self._post(
                InviteRefused(
                    503,
                    "draining" if self._draining else "worker at capacity",
                    str(info.callIdString),
                    str(rdata.srcAddress),
                    message,
                    now_mono,
                    now_wall,
                )
            )
            return
        self._post(
            InviteReceived(
                InviteInfo(
                    leg=leg_no,
                    sip_call_id=str(info.callIdString),
                    source=str(rdata.srcAddress),
                    message=message,
                    received_mono=now_mono,
                    received_wall=now_wall,
                )
            )
        )

    def _on_rejected_incoming(self, prm: Any) -> None:
        if not self._report_stack_refusals:
            return
        self._post(
            InviteRefused(
                int(prm.statusCode),
                f"SIP stack refused: {prm.reason}",
                "",
                str(prm.rdata.srcAddress),
                str(prm.rdata.wholeMsg),
                time.monotonic(),
                time.time(),
            )
        )

    def _on_call_state(self, call: _Call) -> None:
        info = call.getInfo()
        state = _STATE_NAMES.get(info.state)
        leg = self._legs.get(call.leg)
        if state is None or leg is None:
            return
        ended_by = None
        if state is LegState.DISCONNECTED:
            ended_by = "local" if leg.local_hangup else "remote"
            self._release(leg)
        if state in leg.announced or leg.refused:
            return
        leg.announced.add(state)
        self._post(
            LegChanged(
                leg.leg,
                state,
                int(info.lastStatusCode),
                str(info.lastReason),
                time.monotonic(),
                time.time(),
                ended_by,
            )
        )

    def _release(self, leg: _Leg) -> None:
        # The Call is dropped here, inside its DISCONNECTED callback: later,
        # pjsua may have reused its id. Players wait for the graveyard.
        self._legs.pop(leg.leg, None)
        self._pinner.forget(leg.pins)
        if leg.greeting is not None:
            self._graveyard.append(leg.greeting)
            leg.greeting = None
        # Destroyed after this callback returns, which writes the files' headers.
        self._graveyard.extend(leg.recorders)
        leg.recorders.clear()
        # pjsua removed the call's conference port and every connection to it:
        # the agent ports only go back to the pool.
        for key in list(leg.agents):
            self._end_whisper(key)
            use = self._agents.get(key)
            if use is not None:
                # The ports' connections among themselves (a supervisor's) are ours to cut.
                self._unlink_ports(use, leg)
        for key in list(leg.agents):
            use = self._agents.pop(key, None)
            if use is not None:
                self._free_port(use.port)
        leg.agents.clear()

    def _on_call_media_state(self, call: _Call) -> None:
        leg = self._legs.get(call.leg)
        if leg is None:
            return
        info = call.getInfo()
        audio = [
            m.index for m in info.media if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE
        ]
        if audio and self.settings.strict_rtp_source:
            # Every media update, not only the first: a re-INVITE may move the peer.
            self._pin_media(leg, audio)
        if audio and not leg.media_up:
            leg.media_up = True
            # Media comes up inside answer(), before the CONNECTING state is
            # reported; start playback after it so the timeline reads in order.
            leg_no = leg.leg
            self._defer(lambda: self._start_plan_for(leg_no))

    def _pin_media(self, leg: _Leg, media: list[int]) -> None:
        pins: list[MediaPin] = []
        for index in media:
            stream = leg.call.getStreamInfo(index)
            transport = leg.call.getMedTransportInfo(index)
            pins += rtp_strict_source.pins_for(
                transport.localRtpName, stream.remoteRtpAddress, transport.localRtcpName, stream.remoteRtcpAddress
            )
        self._pinner.forget([pin for pin in leg.pins if pin not in pins])
        leg.pins = pins
        self._pinner.locate(pins)
        self._apply_pins(leg)

    def _apply_pins(self, leg: _Leg) -> None:
        for pin in leg.pins:
            try:
                if self._pinner.apply(pin):
                    self._pins_made += 1
                    log.debug("rtp_pinned", leg=leg.leg, port=pin.local_port, peer=f"{pin.peer[0]}:{pin.peer[1]}")
            except rtp_strict_source.PinError as exc:
                # The call goes on, as it would without strict source; the failure is counted and shown.
                if pin.local_port not in leg.pins_failed:
                    leg.pins_failed.add(pin.local_port)
                    self._pin_failures += 1
                    log.error("rtp_pin_failed", leg=leg.leg, error=str(exc))

    def _check_pins(self) -> None:
        for leg in self._legs.values():
            if leg.pins:
                self._apply_pins(leg)

    def _on_prompt_end(self, leg_no: int) -> None:
        """The greeting or an announcement ended: the next announcement, else hang-up or music."""
        leg = self._legs.get(leg_no)
        if leg is None or leg.greeting is None:
            return
        player = leg.greeting
        leg.greeting = None
        with contextlib.suppress(pj.Error):
            player.stopTransmit(leg.call.getAudioMedia(-1))
        self._graveyard.append(player)
        was = leg.hearing
        leg.hearing = None
        if leg.next_prompt is not None:
            prompt, leg.next_prompt = leg.next_prompt, None
            self._play_once(leg, prompt, "announcement")
        elif leg.hang_up_after_prompt:
            self._hangup(leg_no, 0, "", {})
        elif leg.plan is not None and leg.plan.music is not None:
            # Only the first music after the greeting is news for the record.
            self._play_music(leg, leg.plan.music, "music" if was == "greeting" else "music_resumed")

    def _play_once(self, leg: _Leg, path: Path, what: str) -> None:
        player = _GreetingPlayer(self, leg.leg)
        player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(leg.call.getAudioMedia(-1))
        leg.greeting = player
        leg.hearing = what
        self._post(PlaybackStarted(leg.leg, what, time.monotonic(), time.time()))

    def _announce(self, leg_no: int, prompt: Path | None, then_hang_up: bool) -> bool:
        leg = self._leg(leg_no)
        if leg.hearing in ("agent", "hold"):
            return False
        leg.hang_up_after_prompt = leg.hang_up_after_prompt or then_hang_up
        if leg.greeting is not None or not leg.media_up:
            # After what is playing now, or once media is up (the greeting comes first).
            if prompt is not None:
                leg.next_prompt = prompt
            return True
        if prompt is None:
            if then_hang_up:
                self._hangup(leg_no, 0, "", {})
            return False
        self._stop_playback(leg, leg.call.getAudioMedia(-1))
        self._play_once(leg, prompt, "announcement")
        return True

    # ---- commands (pjsua thread) ---------------------------------------

    def _leg(self, leg_no: int) -> _Leg:
        leg = self._legs.get(leg_no)
        if leg is None:
            raise LegGone(f"leg {leg_no} has ended")
        return leg

    def _answer(self, leg_no: int, plan: PlayPlan, status: int) -> None:
        leg = self._leg(leg_no)
        leg.plan = plan
        prm = pj.CallOpParam()
        prm.statusCode = status
        leg.call.answer(prm)

    def _hangup(self, leg_no: int, status: int, reason: str, headers: dict[str, str]) -> None:
        leg = self._leg(leg_no)
        leg.local_hangup = True
        prm = pj.CallOpParam()
        if status:
            prm.statusCode = status
            prm.reason = reason
        for name, value in headers.items():
            header = pj.SipHeader()
            header.hName = name
            header.hValue = value
            prm.txOption.headers.append(header)
        leg.call.hangup(prm)

    def _hangup_all(self) -> int:
        count = len(self._legs)
        for leg in list(self._legs.values()):
            leg.local_hangup = True
        if self._ep is not None and count:
            self._ep.hangupAllCalls()
        return count

    def _start_plan_for(self, leg_no: int) -> None:
        leg = self._legs.get(leg_no)
        if leg is not None:
            self._start_plan(leg)

    def _start_plan(self, leg: _Leg) -> None:
        plan = leg.plan
        if plan is None or leg.hearing is not None:
            return
        if plan.greeting is not None:
            self._play_once(leg, plan.greeting, "greeting")
        elif leg.next_prompt is not None:
            prompt, leg.next_prompt = leg.next_prompt, None
            self._play_once(leg, prompt, "announcement")
        elif plan.music is not None:
            self._play_music(leg, plan.music)

    def _play_music(self, leg: _Leg, path: Path, what: str = "music") -> None:
        # One looping player per file, shared by every caller on hold: that is
        # how music on hold behaves everywhere, and it spares pjsua's players.
        player = self._music.get(path)
        if player is None:
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(path), 0)
            self._music[path] = player
        player.startTransmit(leg.call.getAudioMedia(-1))
        leg.hearing = what
        leg.music = path
        self._post(PlaybackStarted(leg.leg, what, time.monotonic(), time.time()))

    def _stop_playback(self, leg: _Leg, caller: Any) -> None:
        if leg.greeting is not None:
            player = leg.greeting
            leg.greeting = None
            with contextlib.suppress(pj.Error):
                player.stopTransmit(caller)
            self._graveyard.append(player)
        if leg.music is not None:
            music = self._music.get(leg.music)
            leg.music = None
            if music is not None:
                with contextlib.suppress(pj.Error):
                    music.stopTransmit(caller)

    # ---- agent legs (pjsua thread) ---------------------------------------

    def _agent(self, key: str) -> _AgentUse:
        use = self._agents.get(key)
        if use is None:
            raise LegGone(f"agent leg {key!r} has no port (closed, or its call ended)")
        return use

    def _take_port(self) -> _AgentPort:
        if self._free_ports:
            return self._free_ports.pop()
        port = _AgentPort(len(self._ports), self._read_frame, self._write_frame)
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, RATE, 1, FRAME_MS * 1000, 16)
        port.createPort(f"agent-{port.number}", fmt)
        self._ports.append(port)
        return port

    def _free_port(self, port: _AgentPort) -> None:
        port.shuttle = None
        self._free_ports.append(port)

    def _attach_agent(self, key: str, leg_no: int, shuttle: Shuttle) -> None:
        leg = self._leg(leg_no)
        if key in self._agents:
            raise AdapterError(f"agent leg {key!r} already has a port")
        port = self._take_port()
        port.shuttle = shuttle
        self._agents[key] = _AgentUse(key, leg_no, port)
        leg.agents.add(key)

    def _connect_agent(self, use: _AgentUse, caller: Any) -> None:
        caller.startTransmit(use.port)
        if not use.muted:
            use.port.startTransmit(caller)

    def _disconnect_agent(self, use: _AgentUse, caller: Any) -> None:
        with contextlib.suppress(pj.Error):
            caller.stopTransmit(use.port)
        with contextlib.suppress(pj.Error):
            use.port.stopTransmit(caller)

    def _whisper(self, key: str, prompt: Path, done: Future[None]) -> None:
        use = self._agent(key)
        self._end_whisper(key)
        player = _WhisperPlayer(self, key, done)
        player.createPlayer(str(prompt), pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(use.port)
        self._whispers[key] = player

    def _end_whisper(self, key: str) -> None:
        player = self._whispers.pop(key, None)
        if player is None:
            return
        use = self._agents.get(key)
        if use is not None:
            with contextlib.suppress(pj.Error):
                player.stopTransmit(use.port)
        self._graveyard.append(player)
        if not player.done.done():
            player.done.set_result(None)

    def _on_refused_takeover(self, call: _Call, what: str, target: str) -> None:
        log.warning("sip_takeover_refused", leg=call.leg, what=what, target=target[:120])

    def _bridge_agent(self, key: str, record: tuple[Path, Path] | None = None) -> None:
        use = self._agent(key)
        leg = self._leg(use.leg)
        self._end_whisper(key)
        caller = leg.call.getAudioMedia(-1)
        # The agent's answer cuts any announcement short, and those still due are dropped.
        leg.next_prompt = None
        self._stop_playback(leg, caller)
        leg.hearing = "agent"
        if not use.bridged or use.held:
            self._connect_agent(use, caller)
        use.bridged = True
        use.held = False
        if record is not None:
            self._record(leg, use, caller, record)

    def _record_agent(self, key: str, files: tuple[Path, Path]) -> None:
        use = self._agent(key)
        if not use.bridged:
            raise AdapterError(f"agent leg {key!r} is not bridged")
        leg = self._leg(use.leg)
        if not leg.recorders:
            self._record(leg, use, leg.call.getAudioMedia(-1), files)

    def _record(self, leg: _Leg, use: _AgentUse, caller: Any, files: tuple[Path, Path]) -> None:
        if not leg.recorders:
            for path in files:
                path.parent.mkdir(parents=True, exist_ok=True)
                recorder = pj.AudioMediaRecorder()
                recorder.createRecorder(str(path))
                leg.recorders.append(recorder)
            caller.startTransmit(leg.recorders[0])
        # A later agent (the first one lost) is recorded on the same agent's side; a muted one once unmuted.
        if not use.muted:
            use.port.startTransmit(leg.recorders[1])

    def _hold_agent(self, key: str, on: bool) -> None:
        use = self._agent(key)
        leg = self._leg(use.leg)
        if not use.bridged:
            raise AdapterError(f"agent leg {key!r} is not bridged")
        if on == use.held:
            return
        caller = leg.call.getAudioMedia(-1)
        if on:
            self._disconnect_agent(use, caller)
            use.held = True
            if leg.plan is not None and leg.plan.music is not None:
                self._play_music(leg, leg.plan.music, "hold")
        else:
            self._stop_playback(leg, caller)
            self._connect_agent(use, caller)
            use.held = False
            leg.hearing = "agent"

    def _mute_agent(self, key: str, on: bool) -> None:
        use = self._agent(key)
        if on == use.muted:
            return
        use.muted = on
        if not use.bridged or use.held:
            return
        leg = self._leg(use.leg)
        caller = leg.call.getAudioMedia(-1)
        # The recording keeps what the caller hears: a muted agent's aside is not theirs to keep.
        heard_by = [caller, *leg.recorders[1:2]]
        for media in heard_by:
            if on:
                with contextlib.suppress(pj.Error):
                    use.port.stopTransmit(media)
            else:
                use.port.startTransmit(media)

    def _register(self, spec: RegistrationSpec) -> None:
        account = self._registrations.get(spec.key)
        if account is not None:
            account.setRegistration(True)
            return
        acfg = pj.AccountConfig()
        acfg.idUri = spec.aor
        acfg.regConfig.registrarUri = spec.registrar_uri
        acfg.regConfig.timeoutSec = spec.expires_s
        # Failures are retried by the control process, with backoff: pjsua's own retry would
        # hammer a registrar that refuses our credentials every few seconds.
        acfg.regConfig.retryIntervalSec = 0
        acfg.regConfig.registerOnAdd = True
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", spec.realm or "*", spec.username, 0, spec.password))
        acfg.mediaConfig = self._media_config
        account = _RegAccount(self, spec.key)
        account.create(acfg, False)
        self._registrations[spec.key] = account

    def _unregister(self, key: str) -> bool:
        account = self._registrations.get(key)
        if account is None:
            return False
        with contextlib.suppress(pj.Error):
            account.setRegistration(False)
        return True

    def _registering(self) -> bool:
        """Whether an unregistration is still waiting for the registrar's answer."""
        for account in self._registrations.values():
            with contextlib.suppress(pj.Error):
                if account.getInfo().regIsActive:
                    return True
        return False

    def _on_reg_state(self, account: _RegAccount, prm: Any) -> None:
        info = account.getInfo()
        self._post(
            RegistrationChanged(
                account.key,
                bool(info.regIsActive),
                int(prm.code),
                str(prm.reason),
                int(info.regExpiresSec) if info.regIsActive else 0,
                time.monotonic(),
                time.time(),
            )
        )

    def _supervise(self, key: str, agent_key: str, mode: str) -> None:
        if mode not in SUPERVISION_MODES:
            raise AdapterError(f"supervision mode {mode!r}: expected one of {', '.join(SUPERVISION_MODES)}")
        supervisor, agent = self._agent(key), self._agent(agent_key)
        if supervisor.leg != agent.leg:
            raise AdapterError(f"{key!r} and {agent_key!r} are not on the same call")
        if not agent.bridged:
            raise AdapterError(f"agent leg {agent_key!r} is not talking to the caller yet")
        caller = self._leg(supervisor.leg).call.getAudioMedia(-1)
        caller.startTransmit(supervisor.port)
        agent.port.startTransmit(supervisor.port)
        _link(supervisor.port, agent.port, on=mode in ("whisper", "barge"))
        _link(supervisor.port, caller, on=mode == "barge")
        supervisor.supervising, supervisor.mode = agent_key, mode

    def _unlink_ports(self, use: _AgentUse, leg: _Leg) -> None:
        """Cut every connection between this port and the leg's other ports: pooled ports carry none over."""
        for other in leg.agents:
            found = self._agents.get(other)
            if found is not None and found is not use:
                _link(use.port, found.port, on=False)
                _link(found.port, use.port, on=False)

    def _detach_agent(self, key: str) -> bool:
        self._end_whisper(key)
        use = self._agents.pop(key, None)
        if use is None:
            return False
        try:
            leg = self._legs.get(use.leg)
            if leg is not None:
                leg.agents.discard(key)
                self._unlink_ports(use, leg)
                if leg.recorders:
                    # A pooled port must not go on feeding this call's recording.
                    _link(use.port, leg.recorders[1], on=False)
                if use.supervising is not None:
                    caller = leg.call.getAudioMedia(-1)
                    _link(caller, use.port, on=False)
                    _link(use.port, caller, on=False)
                elif use.bridged:
                    caller = leg.call.getAudioMedia(-1)
                    self._disconnect_agent(use, caller)
                    talking = any(self._agents[k].bridged and not self._agents[k].held for k in leg.agents)
                    if not use.held and not talking and leg.plan is not None and leg.plan.music is not None:
                        self._play_music(leg, leg.plan.music)
        finally:
            self._free_port(use.port)
        return True

    def _send_dtmf(self, leg_no: int, digits: str) -> None:
        leg = self._leg(leg_no)
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        leg.call.sendDtmf(prm)

    def _transfer(self, leg_no: int, target: str) -> None:
        leg = self._leg(leg_no)
        leg.call.xfer(target, pj.CallOpParam(True))

    def _on_transfer_status(self, call: _Call, prm: Any) -> None:
        status = int(prm.statusCode)
        log.info("call_transfer_status", leg=call.leg, status=status, final=bool(prm.finalNotify))
        if status // 100 == 2 and call.leg in self._legs:
            # The caller is with the target now: our leg ends here.
            prm.cont = False
            self._hangup(call.leg, 0, "", {})
        elif prm.finalNotify and status >= 300:
            log.warning("call_transfer_failed", leg=call.leg, status=status)

    def _stats(self) -> AdapterStats:
        assert self._ep is not None
        greeting_players = sum(1 for leg in self._legs.values() if leg.greeting is not None)
        return AdapterStats(
            legs=len(self._legs),
            conference_ports=int(self._ep.mediaActivePorts()),
            players=greeting_players + len(self._music),
            music_players=len(self._music),
            threads=len(os.listdir("/proc/self/task"))
            if os.path.isdir("/proc/self/task")
            else threading.active_count(),
            draining=self._draining,
            capacity=self.settings.capacity,
            leg_ids=tuple(sorted(self._legs)),
            agent_ports=len(self._agents),
            agent_ports_pooled=len(self._free_ports),
            agent_port_errors=sum(port.errors for port in self._ports),
            agent_port_error=next((p.first_error for p in self._ports if p.first_error), None),
            fast_frame_copy=self._fast_frames,
            rtp_pins=self._pins_made,
            rtp_pin_failures=self._pin_failures,
        )
