"""RTP on loopback for tests: a UDP endpoint that collects (and optionally sends) RTP.

An ``RtpSink`` is the media end of a SIP peer that is not itself a media stack
(sipp): the test puts the sink's port in the SDP it offers, so the far end's
RTP for that call arrives here, where it is parsed and decoded (PCMU/PCMA) for
tone/energy analysis with ``audio.py``. The same socket can also send a tone
back (symmetric RTP), so the far end hears this "caller" too.

    sink = await RtpSink.open()
    ... offer m=audio {sink.port} ...
    await sink.wait_for_packets(50)
    samples = sink.samples()          # float64 in [-1, 1], 8 kHz
    assert tone_present(samples, 8000, 1000.0)
    sink.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, cast

import numpy as np
import numpy.typing as npt

from audio import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

LOOPBACK = "127.0.0.1"
PT_PCMU = 0
PT_PCMA = 8
RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
MAX_GAP_SAMPLES = 10 * RATE  # a timestamp jump larger than this starts a new run instead of padding

_DECODERS: dict[int, Callable[[bytes], npt.NDArray[np.float64]]] = {
    PT_PCMU: ulaw_decode,
    PT_PCMA: alaw_decode,
}
_ENCODERS: dict[int, Callable[[npt.ArrayLike], bytes]] = {PT_PCMU: ulaw_encode, PT_PCMA: alaw_encode}


@dataclass(frozen=True)
class RtpPacket:
    version: int
    padding: bool
    extension: bool
    marker: bool
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    payload: bytes
    arrival: float  # time.monotonic()
    source: tuple[str, int]


def parse_rtp(data: bytes, arrival: float = 0.0, source: tuple[str, int] = ("", 0)) -> RtpPacket | None:
    """Parse an RTP packet (RFC 3550); None for anything that is not RTP version 2 (e.g. RTCP, STUN)."""
    if len(data) < 12:
        return None
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    version = b0 >> 6
    if version != 2:
        return None
    pt = b1 & 0x7F
    if 72 <= pt <= 76:  # RTCP packet types 200-204 with the marker bit look like PT 72-76
        return None
    cc = b0 & 0x0F
    pos = 12 + 4 * cc
    if len(data) < pos:
        return None
    csrcs = struct.unpack(f"!{cc}I", data[12:pos]) if cc else ()
    extension = bool(b0 & 0x10)
    if extension:
        if len(data) < pos + 4:
            return None
        (_, words) = struct.unpack("!HH", data[pos : pos + 4])
        pos += 4 + 4 * words
    end = len(data)
    padding = bool(b0 & 0x20)
    if padding and end > pos:
        end -= data[-1]
    if end < pos:
        return None
    return RtpPacket(
        version=version,
        padding=padding,
        extension=extension,
        marker=bool(b1 & 0x80),
        payload_type=pt,
        seq=seq,
        timestamp=ts,
        ssrc=ssrc,
        csrcs=tuple(csrcs),
        payload=bytes(data[pos:end]),
        arrival=arrival,
        source=source,
    )


def build_rtp(pt: int, seq: int, timestamp: int, ssrc: int, payload: bytes, *, marker: bool = False) -> bytes:
    return (
        struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload
    )


def _extend_seq(packets: list[RtpPacket]) -> list[int]:
    """Sequence numbers extended across 16-bit wrap-around (each relative to the previous packet)."""
    out: list[int] = []
    prev: int | None = None
    for p in packets:
        ext = p.seq if prev is None else prev + ((p.seq - (prev & 0xFFFF) + 0x8000) & 0xFFFF) - 0x8000
        out.append(ext)
        prev = ext
    return out


def decode_packets(packets: list[RtpPacket]) -> npt.NDArray[np.float64]:
    """PCMU/PCMA audio of ``packets`` as 8 kHz samples.

    Packets are grouped in runs of one SSRC (arrival order); within a run they are
    ordered by sequence number and placed by RTP timestamp, so lost packets show
    up as silence of the right length. Other payload types (telephone-event,
    comfort noise) are skipped.
    """
    runs: list[list[RtpPacket]] = []
    for p in packets:
        if p.payload_type not in _DECODERS:
            continue
        if runs and runs[-1][0].ssrc == p.ssrc:
            runs[-1].append(p)
        else:
            runs.append([p])
    pieces: list[npt.NDArray[np.float64]] = []
    for run in runs:
        ext = _extend_seq(run)
        ordered = [p for _, p in sorted(zip(ext, run, strict=True), key=lambda item: item[0])]
        base = ordered[0].timestamp
        chunks: list[tuple[int, npt.NDArray[np.float64]]] = []
        for p in ordered:
            offset = (p.timestamp - base) & 0xFFFFFFFF
            if offset > MAX_GAP_SAMPLES * 100:
                continue  # timestamp went backwards: drop the straggler
            chunks.append((offset, _DECODERS[p.payload_type](p.payload)))
        total = 0
        for offset, samples in chunks:
            total = max(total, offset + samples.size)
        buf = np.zeros(total)
        for offset, samples in chunks:
            buf[offset : offset + samples.size] = samples
        pieces.append(buf)
    return np.concatenate(pieces) if pieces else np.zeros(0)


class RtpSink(asyncio.DatagramProtocol):
    """An asyncio UDP endpoint on 127.0.0.1 collecting RTP (and optionally sending a signal back)."""

    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []
        self.non_rtp = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.sent = 0
        self._arrived = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._first_packet = asyncio.Event()

    @classmethod
    async def open(cls, host: str = LOOPBACK, port: int = 0) -> Self:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(cls, local_addr=(host, port))
        return protocol

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        packet = parse_rtp(data, time.monotonic(), (addr[0], addr[1]))
        if packet is None:
            self.non_rtp += 1
            return
        self.packets.append(packet)
        if self.remote is None:
            self.remote = packet.source  # symmetric RTP: answer where it comes from
            self._first_packet.set()
        self._arrived.set()

    # inspection
    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    @property
    def packet_count(self) -> int:
        return len(self.packets)

    @property
    def payload_types(self) -> set[int]:
        return {p.payload_type for p in self.packets}

    @property
    def payload_type(self) -> int | None:
        """The most common payload type (the codec in use), None before any packet."""
        if not self.packets:
            return None
        counts: dict[int, int] = {}
        for p in self.packets:
            counts[p.payload_type] = counts.get(p.payload_type, 0) + 1
        return max(counts, key=lambda pt: counts[pt])

    @property
    def ssrcs(self) -> set[int]:
        return {p.ssrc for p in self.packets}

    def samples(self, *, since: float | None = None, until: float | None = None) -> npt.NDArray[np.float64]:
        """Decoded audio (8 kHz floats) of the packets that arrived in [since, until) (monotonic)."""
        chosen = [
            p for p in self.packets if (since is None or p.arrival >= since) and (until is None or p.arrival < until)
        ]
        return decode_packets(chosen)

    def duration_s(self) -> float:
        """Arrival time span of the collected packets."""
        if len(self.packets) < 2:
            return 0.0
        return self.packets[-1].arrival - self.packets[0].arrival

    async def wait_for_packets(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.packets) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"RTP sink :{self.port} got {len(self.packets)} of {n} packets in {timeout}s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    # sending
    def start_sending(
        self,
        samples: npt.ArrayLike,
        *,
        payload_type: int = PT_PCMU,
        remote: tuple[str, int] | None = None,
        loop: bool = True,
    ) -> None:
        """Send ``samples`` (8 kHz floats) as 20 ms RTP frames from this socket.

        Without ``remote`` it waits for the first received packet and answers to
        its source (the far end's RTP port: symmetric RTP), so no SDP parsing is
        needed. Pacing follows an absolute 20 ms schedule (no drift).
        """
        encoded = _ENCODERS[payload_type](samples)
        if remote is not None:
            self.remote = remote
            self._first_packet.set()
        self._sender = asyncio.create_task(self._send_loop(encoded, payload_type, loop))

    async def _send_loop(self, encoded: bytes, pt: int, loop: bool) -> None:
        await self._first_packet.wait()
        assert self.transport is not None
        assert self.remote is not None
        ssrc = random.getrandbits(32)
        seq = random.getrandbits(16)
        ts = random.getrandbits(32)
        start = time.monotonic()
        frame = 0
        pos = 0
        while not self.transport.is_closing():
            if pos + FRAME_SAMPLES > len(encoded):
                if not loop:
                    return
                pos = 0
            payload = encoded[pos : pos + FRAME_SAMPLES]
            self.transport.sendto(build_rtp(pt, seq, ts, ssrc, payload, marker=frame == 0), self.remote)
            self.sent += 1
            pos += FRAME_SAMPLES
            seq = (seq + 1) & 0xFFFF
            ts = (ts + FRAME_SAMPLES) & 0xFFFFFFFF
            frame += 1
            delay = start + frame * 0.020 - time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    def stop_sending(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    def close(self) -> None:
        self.stop_sending()
        if self.transport is not None:
            self.transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
