"""A real media worker with no control process: a scripted handler, real pjsua2 callers, aiortc agents.

    async with running_worker(tmp_path, media) as worker:
        caller = await start_caller(worker.uri("1001"), play=..., record=...)
        leg = await worker.handler.next_leg()
        async with agents(AGENT_HZ) as (agent,):
            await worker.open_agent(agent, leg, "a1")   # rtc_open, the answer applied, both sides connected
            await worker.request("bridge", leg=leg, rtc_id="a1")

The worker is started by `telephony.pool.WorkerPool` exactly as `hotline serve`
starts it, with asyncio's debug mode and its stderr kept in a log file, so a
test can also assert that the worker's event loop never blocked (the worker
logs `event_loop_stalled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import os
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from loop_guard import stalls_in_log

from audio import goertzel_power, read_wav, rms_dbfs, tone_present
from peers.ports import free_port_range
from telephony.ipc import Body
from telephony.pool import WorkerPool
from telephony.sip_events import AdapterSettings
from telephony.worker import WorkerConfig

try:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    from telephony.rtc_leg import pcm_frame
except ImportError:  # reported by the autouse fixture (a failure under CI=true)
    MediaStreamTrack = object

RTP_PORTS = 100
RATE = 8000


@dataclass(frozen=True)
class Media:
    greeting: Path
    music: Path
    caller_tone: Path


# --------------------------------------------------------------------------- the scripted control side


class Handler:
    """Answers every INVITE with the greeting and the music; keeps every event the worker sends."""

    def __init__(self, media: Media) -> None:
        self.media = media
        self.legs: asyncio.Queue[int] = asyncio.Queue()
        self.events: list[tuple[str, Body]] = []
        self._changed = asyncio.Event()
        self.lost: list[int] = []

    async def on_invite(self, worker: int, body: Body) -> Body:
        leg = int(body["leg"])
        self.legs.put_nowait(leg)
        return {
            "action": "answer",
            "call_id": f"call-{leg}",
            "greeting": str(self.media.greeting),
            "music": str(self.media.music),
        }

    def on_worker_event(self, worker: int, kind: str, body: Body) -> None:
        self.events.append((kind, body))
        self._changed.set()

    async def on_worker_lost(self, worker: int) -> None:
        self.lost.append(worker)

    async def on_worker_ready(self, worker: int, generation: int) -> None:
        return None

    async def next_leg(self, timeout: float = 15.0) -> int:
        return await asyncio.wait_for(self.legs.get(), timeout)

    def of(self, kind: str, **match: Any) -> list[Body]:
        return [b for k, b in self.events if k == kind and all(b.get(key) == v for key, v in match.items())]

    async def wait_for(self, kind: str, timeout: float = 10.0, **match: Any) -> Body:
        deadline = time.monotonic() + timeout
        while True:
            found = self.of(kind, **match)
            if found:
                return found[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} {match} within {timeout}s; events: {self.events[-20:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


@dataclass
class RunningWorker:
    pool: WorkerPool
    handler: Handler
    sip_port: int
    log_path: Path

    def uri(self, did: str) -> str:
        return f"sip:{did}@127.0.0.1:{self.sip_port}"

    @property
    def pid(self) -> int:
        pid = self.pool.pid_of(0)
        assert pid is not None
        return pid

    async def request(self, kind: str, timeout: float = 10.0, **body: Any) -> Body:
        return await self.pool.request(0, kind, body, timeout=timeout)

    async def stats(self) -> Body:
        return await self.request("stats")

    async def open_agent(self, agent: BrowserAgent, leg: int, rtc_id: str, codec: str | None = None) -> float:
        """rtc_open with the agent's offer, the answer applied, both sides connected; returns how long it took."""
        started = time.monotonic()
        body: dict[str, Any] = {"leg": leg, "rtc_id": rtc_id, "sdp": await agent.offer()}
        if codec is not None:
            body["codec"] = codec
        reply = await self.request("rtc_open", timeout=15, **body)
        await agent.accept(reply["sdp"])
        await agent.wait_connected()
        await self.handler.wait_for("rtc_state", rtc_id=rtc_id, state="connected")
        return time.monotonic() - started

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(") ", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def loop_stalls(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return stalls_in_log(self.log_path.read_text(errors="replace"))

    async def settled_stats(self, until: Any, timeout: float = 5.0) -> Body:
        """The worker's stats once `until(stats)` holds, or the last ones after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats()
            if until(stats) or time.monotonic() > deadline:
                return stats
            await asyncio.sleep(0.05)


def _free_sip_port() -> int:
    for _ in range(50):
        port = free_port_range(1, even=False)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free SIP port")


@contextlib.asynccontextmanager
async def running_worker(
    tmp_path: Path, media: Media, *, asyncio_debug: bool = True, **config: Any
) -> AsyncIterator[RunningWorker]:
    """A worker with the scripted handler; with `asyncio_debug`, asyncio checks thread-safety too (and the worker runs slower)."""
    sip_port = _free_sip_port()
    worker_config = WorkerConfig(
        index=0,
        adapter=AdapterSettings(
            sip_host="127.0.0.1",
            sip_port=sip_port,
            public_host="127.0.0.1",
            rtp_port=free_port_range(RTP_PORTS),
            rtp_port_range=RTP_PORTS,
            capacity=4,
        ),
        decision_timeout_s=5.0,
        drain_timeout_s=2.0,
        behind_front=False,
        **config,
    )
    log_path = tmp_path / "worker.log"
    # The pool runs `<python> -m hotline worker`: this python keeps the worker's stderr (its log) in a file.
    python = tmp_path / "python-logged"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@" 2>>"{log_path}"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "HOTLINE_LOG_FORMAT": "console"}
    if asyncio_debug:
        env["PYTHONASYNCIODEBUG"] = "1"
    handler = Handler(media)
    pool = WorkerPool([worker_config], handler, python=str(python), env=env)
    await pool.start()
    try:
        yield RunningWorker(pool, handler, sip_port, log_path)
    finally:
        await pool.stop()


# --------------------------------------------------------------------------- the agent's browser


class ToneTrack(MediaStreamTrack):  # type: ignore[misc,valid-type]
    """What a browser's microphone gives: 48 kHz stereo s16 in 20 ms frames, paced, of one tone."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self.sent = 0
        self.start: float | None = None
        # One second holds whole periods of every test tone (integer Hz): it loops without a seam.
        n = np.arange(48000)
        mono = np.round(0.3 * 32767 * np.sin(2 * math.pi * freq * n / 48000)).astype("<i2")
        self._second = np.repeat(mono, 2).tobytes()

    async def recv(self) -> Any:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        wait = self.start + self.sent * 0.02 - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        offset = (self.sent % 50) * 960 * 4
        frame = pcm_frame(self._second[offset : offset + 960 * 4], rate=48000, layout="stereo", pts=self.sent * 960)
        frame.time_base = fractions.Fraction(1, 48000)
        self.sent += 1
        return frame


@dataclass
class Heard:
    """The frames an agent received: arrival time (monotonic) and mono float samples."""

    times: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    rate: int = 0

    def between(self, since: float, until: float) -> np.ndarray:
        chunks = [f for t, f in zip(self.times, self.frames, strict=True) if since <= t < until]
        return np.concatenate(chunks) if chunks else np.zeros(0)

    def first_with(self, freq: float, after: float) -> float | None:
        """Arrival time of the first frame after `after` in which `freq` dominates an audible signal."""
        for t, f in zip(self.times, self.frames, strict=True):
            if t < after or rms_dbfs(f) < -40:
                continue
            # A third: the first frame of a tone starting mid-frame also carries its onset's splatter.
            if goertzel_power(f, self.rate, freq) > float(np.mean(f * f)) / 3:
                return t
        return None


class BrowserAgent:
    """An aiortc peer playing a browser softphone: offers with its tone, records what it hears."""

    def __init__(self, freq: float, offer_only: str | None = None) -> None:
        self.freq = freq
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(ToneTrack(freq))
        if offer_only is not None:
            codecs = RTCRtpSender.getCapabilities("audio").codecs
            self.pc.getTransceivers()[0].setCodecPreferences([c for c in codecs if c.mimeType == offer_only])
        self.heard = Heard()
        self._sink: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("track", self._on_track)

    def _state_changed(self) -> None:
        if self.pc.connectionState == "connected":
            self._connected.set()

    def _on_track(self, track: Any) -> None:
        self._sink = asyncio.create_task(self._record(track))

    async def _record(self, track: Any) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            channels = len(frame.layout.channels)
            raw = np.frombuffer(bytes(frame.planes[0]), dtype="<i2")[: frame.samples * channels]
            samples = raw.astype(np.float64) / 32768.0
            if channels > 1:
                samples = samples.reshape(-1, channels).mean(axis=1)
            self.heard.rate = frame.sample_rate
            self.heard.times.append(time.monotonic())
            self.heard.frames.append(samples)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    def hears(self, freq: float, since: float, until: float) -> bool:
        return tone_present(self.heard.between(since, until), self.heard.rate, freq)

    def level_dbfs(self, since: float, until: float) -> float:
        return rms_dbfs(self.heard.between(since, until))

    async def close(self) -> None:
        await self.pc.close()
        if self._sink is not None:
            self._sink.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sink


@contextlib.asynccontextmanager
async def agents(*freqs: float) -> AsyncIterator[list[BrowserAgent]]:
    made = [BrowserAgent(f) for f in freqs]
    try:
        yield made
    finally:
        for agent in made:
            await agent.close()


@contextlib.contextmanager
def cpu_meter(worker: RunningWorker) -> Iterator[dict[str, float]]:
    """The share of one core the worker used while the block ran."""
    out: dict[str, float] = {}
    cpu, wall = worker.cpu_seconds(), time.monotonic()
    yield out
    out["core_share"] = (worker.cpu_seconds() - cpu) / (time.monotonic() - wall)


# --------------------------------------------------------------------------- the caller's recording


@dataclass
class Recording:
    """A caller's recording, addressed by the monotonic clock (it starts at the caller's media_active)."""

    samples: np.ndarray
    started: float

    @classmethod
    def load(cls, path: Path, media_active_t: float) -> Recording:
        samples, rate = read_wav(path)
        assert rate == RATE
        return cls(samples, media_active_t)

    def between(self, since: float, until: float) -> np.ndarray:
        a = max(0, round((since - self.started) * RATE))
        b = max(a, round((until - self.started) * RATE))
        return self.samples[a:b]

    def has(self, freq: float, since: float, until: float) -> bool:
        return tone_present(self.between(since, until), RATE, freq)
