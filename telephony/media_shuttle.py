"""Moving 20 ms audio frames between the pjmedia clock thread and asyncio.

Pure: no I/O, no pjsua2, no aiortc. The conference bridge works in 8 kHz
mono signed 16-bit frames of 20 ms (320 bytes); everything here speaks that.

A `FrameRing` is written by one thread and read by another: the pjmedia
clock thread on one side (inside an `AudioMediaPort` callback), the worker's
asyncio thread on the other (an aiortc track). Its capacity is the most
audio it will ever delay: on overrun the oldest frame goes, so a burst after
a stall costs a few dropped frames instead of a permanent delay; on underrun
the reader gets silence, never a frame it already played.

Two clocks meet in a ring (the browser's and pjmedia's), and a burst that
fits in it leaves it fuller for good: every frame queued is 20 ms of delay
nobody asked for. With `trim_window`, a ring that never went below `slack + n`
frames during that many pops drops its `n` oldest, bringing the delay back
to what the jitter actually needs.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
SAMPLE_BYTES = 2
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_BYTES
SILENCE = bytes(FRAME_BYTES)


class FrameRing:
    """A bounded FIFO of whole frames, safe for one producer thread and one consumer thread.

    A plain lock and not the GIL's per-operation atomicity: the counters have
    to agree with the frames (a drop is counted only when a frame really went),
    and `clear()` must not interleave with a push. The lock is held for a few
    deque operations, never across anything that blocks or releases the GIL,
    so the clock thread waits on it for well under a microsecond.
    """

    __slots__ = (
        "_frame_bytes",
        "_frames",
        "_lock",
        "_lowest",
        "_window_pops",
        "capacity",
        "dropped",
        "popped",
        "pushed",
        "slack",
        "trim_window",
        "trimmed",
        "underruns",
    )

    def __init__(self, capacity: int, frame_bytes: int = FRAME_BYTES, *, trim_window: int = 0, slack: int = 1) -> None:
        if capacity < 1:
            raise ValueError("a ring holds at least one frame")
        self.capacity = capacity
        self.trim_window = trim_window
        self.slack = slack
        self._frame_bytes = frame_bytes
        self._frames: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._lowest = capacity
        self._window_pops = 0
        self.pushed = 0
        self.popped = 0
        self.dropped = 0
        self.trimmed = 0
        self.underruns = 0

    def push(self, frame: bytes) -> None:
        """Queue one frame; when full, the oldest queued frame is dropped to make room."""
        if len(frame) != self._frame_bytes:
            raise ValueError(f"a frame is {self._frame_bytes} bytes, not {len(frame)}")
        with self._lock:
            if len(self._frames) >= self.capacity:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(frame)
            self.pushed += 1

    def pop_or_none(self) -> bytes | None:
        """The oldest frame, or None (an underrun) when empty."""
        with self._lock:
            frames = self._frames
            if self.trim_window:
                self._trim(frames)
            if frames:
                self.popped += 1
                return frames.popleft()
            self.underruns += 1
            return None

    def _trim(self, frames: deque[bytes]) -> None:
        self._lowest = min(self._lowest, len(frames))
        self._window_pops += 1
        if self._window_pops < self.trim_window:
            return
        excess = self._lowest - self.slack
        for _ in range(excess):
            frames.popleft()
        if excess > 0:
            self.trimmed += excess
        self._window_pops = 0
        self._lowest = self.capacity

    def pop(self) -> bytes:
        """The oldest frame, or silence (an underrun) when empty."""
        frame = self.pop_or_none()
        return SILENCE if frame is None else frame

    def clear(self) -> int:
        """Forget every queued frame (they are not counted as drops); returns how many there were."""
        with self._lock:
            count = len(self._frames)
            self._frames.clear()
            self._window_pops = 0
            self._lowest = self.capacity
            return count

    def __len__(self) -> int:
        return len(self._frames)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "depth": len(self._frames),
                "capacity": self.capacity,
                "pushed": self.pushed,
                "popped": self.popped,
                "dropped": self.dropped,
                "trimmed": self.trimmed,
                "underruns": self.underruns,
            }


@dataclass(eq=False)
class Shuttle:
    """The two rings of one agent leg: what the agent hears, and what the caller hears from the agent."""

    to_agent: FrameRing
    to_caller: FrameRing

    @classmethod
    def with_capacity(cls, frames: int, trim_window: int = 50) -> Shuttle:
        """Rings of `frames` frames that shed delay they kept for `trim_window` pops (50: a second)."""
        return cls(FrameRing(frames, trim_window=trim_window), FrameRing(frames, trim_window=trim_window))

    def clear(self) -> None:
        self.to_agent.clear()
        self.to_caller.clear()


class Rechunker:
    """Cuts a byte stream of samples, arriving in pieces of any size, into frames of exactly `frame_bytes`."""

    __slots__ = ("_buffer", "frame_bytes")

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        self.frame_bytes = frame_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        size = self.frame_bytes
        whole = len(buffer) - len(buffer) % size
        if not whole:
            return []
        frames = [bytes(buffer[i : i + size]) for i in range(0, whole, size)]
        del buffer[:whole]
        return frames

    @property
    def pending(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._buffer)

    def reset(self) -> None:
        self._buffer.clear()
