"""The frame rings between the pjmedia clock thread and asyncio, and the browser <-> bridge PCM conversion."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from audio import AGENT_HZ, CALLER_HZ, dominant_frequencies, tone, tone_present
from telephony.media_shuttle import FRAME_BYTES, SILENCE, FrameRing, Rechunker, Shuttle
from telephony.rtc_leg import PcmConverter, pcm_frame


def frame(n: int) -> bytes:
    """A recognisable 20 ms frame: its number in every sample."""
    return np.full(FRAME_BYTES // 2, n, dtype="<i2").tobytes()


def number(data: bytes) -> int:
    return int(np.frombuffer(data, dtype="<i2")[0])


def pcm(samples: np.ndarray, channels: int = 1) -> bytes:
    ints = np.round(samples * 32767).astype("<i2")
    return (np.repeat(ints, channels) if channels > 1 else ints).tobytes()


def floats(data: bytes, channels: int = 1) -> np.ndarray:
    x = np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
    return x.reshape(-1, channels).mean(axis=1) if channels > 1 else x


# --------------------------------------------------------------------------- FrameRing


def test_underrun_gives_silence_never_the_last_frame_again() -> None:
    ring = FrameRing(4)
    ring.push(frame(7))
    assert number(ring.pop()) == 7
    assert ring.pop() == SILENCE
    assert ring.pop() == SILENCE
    assert ring.pop_or_none() is None
    assert (ring.pushed, ring.popped, ring.underruns, ring.dropped) == (1, 1, 3, 0)


def test_overrun_drops_the_oldest_frames() -> None:
    ring = FrameRing(3)
    for n in range(1, 6):
        ring.push(frame(n))
    assert len(ring) == 3
    assert [number(ring.pop()) for _ in range(3)] == [3, 4, 5]
    assert ring.stats() == {
        "depth": 0,
        "capacity": 3,
        "pushed": 5,
        "popped": 3,
        "dropped": 2,
        "trimmed": 0,
        "underruns": 0,
    }


def test_clear_forgets_queued_frames_without_counting_them_as_drops() -> None:
    ring = FrameRing(4)
    ring.push(frame(1))
    ring.push(frame(2))
    assert ring.clear() == 2
    assert ring.pop() == SILENCE
    assert ring.dropped == 0


def test_delay_kept_for_a_whole_window_is_shed() -> None:
    ring = FrameRing(10, trim_window=5, slack=1)
    for n in range(4):
        ring.push(frame(n))
    # A steady producer and consumer with 4 frames queued ahead: 80 ms of delay no jitter needs
    # (one frame before each pop is all a steady pace needs).
    out = []
    for n in range(4, 9):
        ring.push(frame(n))
        out.append(number(ring.pop()))
    assert out == [0, 1, 2, 3, 8]  # at the window's end, the 4 oldest went
    assert ring.trimmed == 4
    assert ring.dropped == 0
    assert len(ring) == 0


def test_delay_the_jitter_used_is_kept() -> None:
    ring = FrameRing(10, trim_window=5, slack=1)
    for n in range(40):
        # Bursty: two frames every other tick; just before some pops only one frame is there.
        if n % 2:
            ring.push(frame(2 * n))
            ring.push(frame(2 * n + 1))
        ring.pop()
    assert ring.trimmed == 0
    assert ring.underruns == 1  # the very first pop, before anything came


def test_a_frame_is_exactly_20_ms() -> None:
    ring = FrameRing(2)
    with pytest.raises(ValueError, match="320 bytes"):
        ring.push(b"\0" * 319)
    with pytest.raises(ValueError, match="at least one frame"):
        FrameRing(0)


def test_a_shuttle_has_one_ring_per_direction() -> None:
    shuttle = Shuttle.with_capacity(5)
    shuttle.to_agent.push(frame(1))
    shuttle.to_caller.push(frame(2))
    assert (shuttle.to_agent.capacity, shuttle.to_caller.capacity) == (5, 5)
    shuttle.clear()
    assert len(shuttle.to_agent) == len(shuttle.to_caller) == 0


@pytest.fixture
def busy_switching() -> object:
    """Switch threads as often as CPython allows, so the two sides interleave at every bytecode they can."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield None
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("busy_switching")
@pytest.mark.parametrize("capacity", [8, 50_000])
def test_producer_and_consumer_threads_lose_nothing_while_under_capacity(capacity: int) -> None:
    total = 20_000
    ring = FrameRing(capacity)
    frames = [frame(n % 30_000) for n in range(total)]
    received: list[bytes] = []

    def produce() -> None:
        for data in frames:
            # One producer: the length only shrinks behind its back, so this keeps it under capacity.
            while len(ring) >= capacity:
                time.sleep(0)
            ring.push(data)

    def consume() -> None:
        deadline = time.monotonic() + 30
        while len(received) < total and time.monotonic() < deadline:
            data = ring.pop_or_none()
            if data is None:
                time.sleep(0)
            else:
                received.append(data)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(received) == total
    assert received == frames  # every frame, once, in order
    assert (ring.pushed, ring.popped, ring.dropped) == (total, total, 0)


# --------------------------------------------------------------------------- chunking and resampling


def test_rechunker_cuts_any_pieces_into_exact_frames() -> None:
    stream = bytes(range(256)) * 20
    chunker = Rechunker()
    out: list[bytes] = []
    position = 0
    for size in [1, 319, 320, 321, 7, 1000, 0, 640, 13, 2000]:
        out += chunker.feed(stream[position : position + size])
        position += size
    assert all(len(f) == FRAME_BYTES for f in out)
    assert b"".join(out) == stream[: len(out) * FRAME_BYTES]
    assert chunker.pending == position - len(out) * FRAME_BYTES


# Input pieces of uneven sizes (in samples), as a browser's decoder or a resampler may give them.
PIECES = [960, 480, 1440, 1000, 17, 943, 960, 960, 2880, 333, 627, 960]


@pytest.mark.parametrize("freq", [CALLER_HZ, AGENT_HZ])
@pytest.mark.parametrize("layout", ["stereo", "mono"])
def test_48k_to_8k_keeps_the_tone_and_gives_exact_20ms_frames(freq: float, layout: str) -> None:
    channels = 2 if layout == "stereo" else 1
    signal = tone(freq, sum(PIECES) / 48000, rate=48000)
    converter = PcmConverter()
    out: list[bytes] = []
    start = 0
    for i, size in enumerate(PIECES):
        piece = pcm(signal[start : start + size], channels)
        out += converter.convert(pcm_frame(piece, rate=48000, layout=layout, pts=start))
        start += size
        if i == 0:
            assert len(out) <= 1  # the resampler holds back its filter's delay at first
    assert all(len(f) == FRAME_BYTES for f in out)
    # All of it comes out but the resampler's delay and a partial last frame.
    assert len(out) >= sum(PIECES) / 960 - 2
    heard = floats(b"".join(out))[160:]  # past the filter's attack
    assert tone_present(heard, 8000, freq)
    assert abs(dominant_frequencies(heard, 8000, 1)[0] - freq) < 2


@pytest.mark.parametrize("freq", [CALLER_HZ, AGENT_HZ])
def test_8k_to_48k_keeps_the_tone(freq: float) -> None:
    signal = tone(freq, 1.0)
    converter = PcmConverter(rate=48000, layout="stereo")
    assert converter.frame_bytes == 960 * 2 * 2
    out: list[bytes] = []
    start = 0
    for size in [160, 80, 240, 160, 7, 153, 160, 7000 - 960]:
        out += converter.convert(pcm_frame(pcm(signal[start : start + size]), pts=start))
        start += size
    assert out
    assert all(len(f) == converter.frame_bytes for f in out)
    heard = floats(b"".join(out), channels=2)[960:]
    assert tone_present(heard, 48000, freq)
    assert abs(dominant_frequencies(heard, 48000, 1)[0] - freq) < 2


def test_8k_mono_passes_through_unchanged_in_exact_frames() -> None:
    data = pcm(tone(CALLER_HZ, 0.5))
    converter = PcmConverter()
    out: list[bytes] = []
    start = 0
    for size in [160, 80, 240, 100, 220, 160]:
        out += converter.convert(pcm_frame(data[start * 2 : (start + size) * 2], pts=start))
        start += size
    assert [len(f) for f in out] == [FRAME_BYTES] * 6
    assert b"".join(out) == data[: 6 * FRAME_BYTES]
