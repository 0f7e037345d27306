"""A call's recording as one compressed file: Ogg Opus, the caller on the left channel, the agent on the right.

The worker records each side to its own 16-bit WAV while the call is up (so
voice activity can be told apart); once the call is over both are encoded
into one stereo file that any browser plays. Blocking: run it in a thread.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

# Below 32 kbit/s libopus codes the two channels jointly, and one party leaks into the other's channel
# (-39 dB at 24k, -20 dB at 16k, measured); from 32k they are kept apart, at a sixth of the WAVs' size.
BITRATE = 32_000
FRAME_MS = 20
MEDIA_TYPE = "audio/ogg"


class RecordingFileError(ValueError):
    """A recorded side that can't be read as 16-bit mono PCM."""


@dataclass(frozen=True)
class Encoded:
    path: Path
    duration_ms: int
    size: int


def read_side(path: Path) -> tuple[int, Pcm]:
    """A side's rate and samples. A file whose header was never finalised (the worker died
    mid-call) still reads: its data then runs to the end of the file."""
    raw = path.read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise RecordingFileError(f"{path.name}: not a WAV file")
    pos, rate, data = 12, None, None
    while pos + 8 <= len(raw):
        chunk, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", raw[body : body + 8])
            bits = struct.unpack("<H", raw[body + 14 : body + 16])[0]
            if (tag, channels, bits) != (1, 1, 16):
                raise RecordingFileError(f"{path.name}: not 16-bit mono PCM")
        elif chunk == b"data":
            end = body + size if 0 < size <= len(raw) - body else len(raw)
            data = raw[body:end]
            break
        pos = body + size + (size & 1)
    if rate is None or data is None:
        raise RecordingFileError(f"{path.name}: no format or no data chunk")
    return rate, np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)


def encode_call(caller: Path, agent: Path, out: Path, *, bitrate: int = BITRATE) -> Encoded:
    """Both sides into `out`, written whole or not at all (a temporary file, then a rename)."""
    rate, left = read_side(caller)
    agent_rate, right = read_side(agent)
    if agent_rate != rate:
        raise RecordingFileError(f"the sides differ in rate: {rate} and {agent_rate} Hz")
    length = max(len(left), len(right))
    stereo = np.zeros((length, 2), dtype=np.int16)
    stereo[: len(left), 0] = left
    stereo[: len(right), 1] = right
    temporary = out.with_name(out.name + ".part")
    container = av.open(str(temporary), "w", format="ogg")
    try:
        stream = container.add_stream("libopus", rate=rate)
        stream.codec_context.layout = "stereo"
        stream.codec_context.bit_rate = bitrate
        step = rate * FRAME_MS // 1000
        for start in range(0, length, step):
            chunk = stereo[start : start + step]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="stereo")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()
    os.replace(temporary, out)
    return Encoded(out, duration_ms=round(length * 1000 / rate), size=out.stat().st_size)


def decode_call(path: Path, rate: int = 8000) -> tuple[Pcm, Pcm]:
    """The caller's and the agent's channels of an encoded recording, resampled to `rate`."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=rate)
        parts = [frame.to_ndarray() for decoded in container.decode(stream) for frame in resampler.resample(decoded)]
        parts += [frame.to_ndarray() for frame in resampler.resample(None)]
    if not parts:
        return np.zeros(0, np.int16), np.zeros(0, np.int16)
    samples = np.concatenate(parts, axis=1).reshape(-1, 2).astype(np.int16)
    return samples[:, 0].copy(), samples[:, 1].copy()
