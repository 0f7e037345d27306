"""An agent's browser leg: WebRTC terminated by aiortc in the media worker that holds the call.

The browser offers (complete SDP, candidates included) and the worker
answers. The leg negotiates and connects while the agent's phone rings, with
its media held: answering then only connects a conference port (see
`SipAdapter.bridge_agent`). Audio crosses between aiortc and the pjmedia clock
thread through the two `FrameRing`s of a `Shuttle`, in 20 ms frames of 8 kHz
mono s16:

- `CallerVoice`, the track the worker sends, pops `to_agent` once per 20 ms;
- a pump task reads the browser's track, converts it to 8 kHz mono 20 ms
  frames and pushes them into `to_caller`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aioice.ice
import av
import structlog
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from telephony.media_shuttle import FRAME_MS, FRAME_SAMPLES, RATE, SAMPLE_BYTES, SILENCE, Rechunker, Shuttle

log = structlog.get_logger("telephony.rtc")

CODECS = {"pcmu": "audio/PCMU", "opus": "audio/opus"}
FRAME_S = FRAME_MS / 1000
# A send deadline missed by more than a frame is a pacing slip; by more than
# this, the track stops trying to catch up (the receiver's jitter buffer would
# not want a burst that long anyway).
MAX_BEHIND_S = 0.1

StateCallback = Callable[["RtcLeg", str], None]


class RtcError(RuntimeError):
    """The browser's offer can't be answered (no common codec, bad SDP, closed leg)."""


# ---- ICE host candidates ---------------------------------------------------------


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Make aioice gather host candidates on exactly these addresses, for every peer connection of this process.

    aioice enumerates the machine's interfaces itself and skips loopback, so on
    a loopback-only host it offers no candidate at all and ICE never connects;
    on a real host it offers every interface, including ones no agent can
    reach, each costing connectivity checks. It has no setting for this, and
    its `Connection` looks `aioice.ice.get_host_addresses` up at gathering
    time, so replacing that function once at worker start is the one lever.
    """
    fixed = [str(ipaddress.ip_address(a)) for a in addresses]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (use_ipv6 if ":" in a else use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


async def resolve_host_addresses(hosts: Sequence[str]) -> list[str]:
    """IP addresses for `hosts` (addresses stay as they are, names are resolved), without duplicates."""
    loop = asyncio.get_running_loop()
    out: list[str] = []
    for host in hosts:
        try:
            found = [str(ipaddress.ip_address(host))]
        except ValueError:
            infos = await loop.getaddrinfo(host, None, proto=6)
            found = [str(info[4][0]) for info in infos]
        out += [a for a in found if a not in out]
    return out


# ---- PCM conversion ----------------------------------------------------------------


def pcm_frame(data: bytes, *, rate: int = RATE, layout: str = "mono", pts: int | None = None) -> av.AudioFrame:
    """Packed s16 samples as an av AudioFrame (`pts` in 1/`rate` units)."""
    channels = 2 if layout == "stereo" else 1
    frame = av.AudioFrame(format="s16", layout=layout, samples=len(data) // (SAMPLE_BYTES * channels))
    frame.planes[0].update(data)
    frame.sample_rate = rate
    frame.time_base = fractions.Fraction(1, rate)
    frame.pts = pts
    return frame


def _samples(frame: av.AudioFrame) -> bytes:
    # Packed s16: every channel is in plane 0, which may carry alignment padding.
    return bytes(frame.planes[0])[: frame.samples * len(frame.layout.channels) * SAMPLE_BYTES]


class PcmConverter:
    """Audio frames of any format, rate, layout and length → packed s16 frames of exactly 20 ms at `rate`/`layout`.

    Built on libswresample (av.AudioResampler). A resampler holds back part of
    its first input (its filter's delay), so the first call may return
    nothing; the rechunker then cuts whatever comes out into whole frames.
    """

    def __init__(self, rate: int = RATE, layout: str = "mono") -> None:
        self.rate = rate
        self.layout = layout
        channels = 2 if layout == "stereo" else 1
        self.frame_bytes = rate * FRAME_MS // 1000 * channels * SAMPLE_BYTES
        self._chunker = Rechunker(self.frame_bytes)
        self._resampler: av.AudioResampler | None = None
        self._source: tuple[str, str, int] | None = None

    def convert(self, frame: av.AudioFrame) -> list[bytes]:
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        if source == ("s16", self.layout, self.rate):
            return self._chunker.feed(_samples(frame))
        if self._resampler is None or source != self._source:
            # A renegotiated codec changes the input format, which a resampler refuses.
            self._resampler = av.AudioResampler(format="s16", layout=self.layout, rate=self.rate)
            self._source = source
        out: list[bytes] = []
        for converted in self._resampler.resample(frame):
            out += self._chunker.feed(_samples(converted))
        return out

    def reset(self) -> None:
        self._chunker.reset()
        self._resampler = None
        self._source = None


# ---- media ----------------------------------------------------------------------------


@dataclass
class MediaCounters:
    frames_sent: int = 0
    frames_received: int = 0
    # Send deadlines missed by more than a frame, and times the pacing gave up catching up.
    late_frames: int = 0
    resyncs: int = 0
    # When the caller's audio last started flowing to the agent, and when its first frame was sent (monotonic).
    to_agent_opened_mono: float | None = None
    first_frame_to_agent_mono: float | None = None


@dataclass
class Gate:
    """Which directions flow: both closed until bridged; `to_caller` also closed while muted."""

    to_agent: bool = False
    to_caller: bool = False


class CallerVoice(MediaStreamTrack):
    """The track sent to the browser: the caller's side of the conference, one frame every 20 ms.

    aiortc pulls frames as fast as `recv` returns them, so `recv` keeps its own
    clock. While the gate is closed it sends silence without touching the ring.
    """

    kind = "audio"

    def __init__(self, shuttle: Shuttle, gate: Gate, counters: MediaCounters) -> None:
        super().__init__()
        self._ring = shuttle.to_agent
        self._gate = gate
        self._counters = counters
        self._deadline: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._deadline is None:
            self._deadline = now
        else:
            self._deadline += FRAME_S
            wait = self._deadline - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -FRAME_S:
                self._counters.late_frames += 1
                if wait < -MAX_BEHIND_S:
                    self._counters.resyncs += 1
                    self._deadline = now
        data = SILENCE
        if self._gate.to_agent:
            popped = self._ring.pop_or_none()
            if popped is not None:
                data = popped
                if self._counters.first_frame_to_agent_mono is None:
                    self._counters.first_frame_to_agent_mono = time.monotonic()
        frame = pcm_frame(data, pts=self._pts)
        self._pts += FRAME_SAMPLES
        self._counters.frames_sent += 1
        return frame


def _codec_preferences(codec: str) -> list[Any]:
    mime = CODECS.get(codec.lower())
    if mime is None:
        raise RtcError(f"unsupported codec {codec!r}: use one of {', '.join(CODECS)}")
    preferred = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == mime.lower()]
    if not preferred:
        raise RtcError(f"this aiortc has no {mime}")
    return preferred


def _ice_credentials(sdp: str) -> tuple[str, str]:
    ufrag = password = ""
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:") and not ufrag:
            ufrag = line.split(":", 1)[1].strip()
        elif line.startswith("a=ice-pwd:") and not password:
            password = line.split(":", 1)[1].strip()
    return ufrag, password


class RtcLeg:
    """One agent's WebRTC leg on one call (our leg number), with its shuttle to the conference port."""

    def __init__(
        self,
        rtc_id: str,
        leg: int,
        *,
        codec: str,
        ice_servers: Sequence[dict[str, Any]],
        ring_frames: int,
        on_state: StateCallback,
    ) -> None:
        self.rtc_id = rtc_id
        self.leg = leg
        self.codec = codec
        self.shuttle = Shuttle.with_capacity(ring_frames)
        self.gate = Gate()
        self.counters = MediaCounters()
        self._ice_servers = [RTCIceServer(**server) for server in ice_servers]
        self._preferences = _codec_preferences(codec)
        self._on_state = on_state
        self._pc: RTCPeerConnection | None = None
        self._pump: asyncio.Task[None] | None = None
        self._remote_ice: tuple[str, str] = ("", "")
        self._converter = PcmConverter()
        self._state = "new"
        self._closed = False
        self._closer: asyncio.Future[None] | None = None
        self._opened_mono = time.monotonic()
        self._connect_s: float | None = None
        self.bridged = False
        self.held = False
        self.muted = False

    @property
    def state(self) -> str:
        return self._state

    @property
    def closed(self) -> bool:
        return self._closed

    async def answer(self, offer: str) -> str:
        """Answer the browser's offer on a new peer connection (the first offer, or one with new ICE credentials)."""
        if self._closed:
            raise RtcError(f"rtc leg {self.rtc_id!r} is closed")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        pc.on("connectionstatechange", lambda: self._on_connection_state(pc))
        # The order that makes aiortc answer with our codec: a transceiver with
        # the preference set and the track in place before the offer is applied.
        transceiver = pc.addTransceiver("audio", direction="sendrecv")
        transceiver.setCodecPreferences(self._preferences)
        transceiver.sender.replaceTrack(CallerVoice(self.shuttle, self.gate, self.counters))
        try:
            sdp = await self._negotiate(pc, offer)
            if self._closed:
                raise RtcError(f"rtc leg {self.rtc_id!r} was closed while answering")
        except BaseException:
            await pc.close()
            raise
        old, self._pc = self._pc, pc
        self._remote_ice = _ice_credentials(offer)
        self._start_pump(transceiver.receiver.track)
        if old is not None:
            await old.close()
        return sdp

    async def update(self, offer: str) -> str:
        """A new offer from the browser: renegotiate, or start over when its ICE credentials changed.

        aiortc can't restart ICE on a live connection: an offer with new ICE
        credentials (an ICE restart, or a new browser-side connection) is
        answered on a new peer connection, with the same rings and gate, so
        the conference port and the bridge state don't change.
        """
        pc = self._pc
        if self._closed or pc is None:
            raise RtcError(f"rtc leg {self.rtc_id!r} is closed")
        if pc.connectionState in ("failed", "closed") or _ice_credentials(offer) != self._remote_ice:
            return await self.answer(offer)
        return await self._negotiate(pc, offer)

    async def _negotiate(self, pc: RTCPeerConnection, offer: str) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            # Non-trickle: setLocalDescription returns once gathering is complete.
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, OperationError, InvalidStateError, InvalidAccessError, InternalError) as exc:
            raise RtcError(f"can't answer the offer: {type(exc).__name__}: {exc}") from exc
        local = pc.localDescription
        assert local is not None
        return str(local.sdp)

    def _start_pump(self, track: MediaStreamTrack | None) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self._pump = None
        if track is not None:
            self._pump = asyncio.create_task(self._pump_from_browser(track), name=f"rtc-pump-{self.rtc_id}")

    async def _pump_from_browser(self, track: MediaStreamTrack) -> None:
        ring = self.shuttle.to_caller
        converter = self._converter
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.counters.frames_received += 1
            if not self.gate.to_caller or not isinstance(frame, av.AudioFrame):
                continue
            for chunk in converter.convert(frame):
                ring.push(chunk)

    def _on_connection_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self._pc or self._closed:
            return
        state = pc.connectionState
        if state == "connected" and self._connect_s is None:
            self._connect_s = time.monotonic() - self._opened_mono
        if state in ("connected", "failed") and state != self._state:
            self._state = state
            log.info("rtc_state", rtc_id=self.rtc_id, leg=self.leg, state=state, codec=self.codec)
            self._on_state(self, state)
        elif state == "closed" and self._closer is None:
            # The browser closed its side (DTLS close_notify): aiortc closed ours.
            self._closer = asyncio.ensure_future(self.close())

    def set_media(
        self,
        *,
        bridged: bool | None = None,
        held: bool | None = None,
        muted: bool | None = None,
        whispering: bool = False,
        supervising: str | None = None,
    ) -> None:
        """Follow what the conference bridge now connects for this leg (called once the adapter has done it).

        `whispering`: before the bridge, the agent hears a prompt and nothing goes to the caller.
        `supervising`: a supervisor's leg hears the call; it is heard only in whisper and barge."""
        if bridged is not None:
            self.bridged = bridged
        if held is not None:
            self.held = held
        if muted is not None:
            self.muted = muted
        if supervising is not None:
            self._set_gate(to_agent=True, to_caller=supervising != "listen" and not self.muted)
            return
        talking = self.bridged and not self.held
        self._set_gate(to_agent=talking or whispering, to_caller=talking and not self.muted)

    def _set_gate(self, *, to_agent: bool, to_caller: bool) -> None:
        # A direction that opens starts from an empty ring: no stale audio.
        if to_agent and not self.gate.to_agent:
            self.shuttle.to_agent.clear()
            self.counters.to_agent_opened_mono = time.monotonic()
            self.counters.first_frame_to_agent_mono = None
        if to_caller and not self.gate.to_caller:
            self.shuttle.to_caller.clear()
            self._converter.reset()
        self.gate.to_agent = to_agent
        self.gate.to_caller = to_caller

    async def close(self, *, report: bool = True) -> None:
        """Close the peer connection; reports `closed` once (unless told not to: a leg that never opened)."""
        if self._closed:
            return
        self._closed = True
        self.gate.to_agent = self.gate.to_caller = False
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self._pc is not None:
            await self._pc.close()
        self._state = "closed"
        log.info("rtc_state", rtc_id=self.rtc_id, leg=self.leg, state="closed", **asdict(self.counters))
        if report:
            self._on_state(self, "closed")

    def stats(self) -> dict[str, Any]:
        return {
            "rtc_id": self.rtc_id,
            "leg": self.leg,
            "codec": self.codec,
            "state": self._state,
            # From rtc_open to the first "connected".
            "connect_s": self._connect_s,
            "bridged": self.bridged,
            "held": self.held,
            "muted": self.muted,
            "to_agent_open": self.gate.to_agent,
            "to_caller_open": self.gate.to_caller,
            **asdict(self.counters),
            "to_agent": self.shuttle.to_agent.stats(),
            "to_caller": self.shuttle.to_caller.stats(),
        }
