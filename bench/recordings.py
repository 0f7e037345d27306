"""What a stored recording costs after each call: analysis, compression and size, per minute of call.

usage: .venv/bin/python bench/recordings.py [MINUTES ...]
Each side is 8 kHz speech-like audio (a tone gliding between 300 and 900 Hz, silent a third of the time,
with noise), as the worker records it; the work is what telephony/call_recordings.py does in its thread.
"""

from __future__ import annotations

import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from dialplan.voice_analytics import voice_figures
from telephony.recording_codec import decode_call, encode_call
from telephony.voice_activity import speech_frames

RATE = 8000


def side(path: Path, minutes: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * RATE)
    t = np.arange(n) / RATE
    glide = 600 + 300 * np.sin(2 * np.pi * 0.3 * t + seed)
    voice = 0.3 * np.sin(2 * np.pi * np.cumsum(glide) / RATE)
    talking = (np.floor(t / 2.0 + seed) % 3) != 0  # 2 s turns, silent one in three
    pcm = (voice * talking + 0.003 * rng.standard_normal(n)) * 32767
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.astype(np.int16).tobytes())


def main() -> None:
    minutes = [float(m) for m in sys.argv[1:]] or [1.0, 5.0, 20.0]
    print("| call | VAD both sides | Opus encode | decode (check) | WAVs | Ogg Opus | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for length in minutes:
            caller, agent = base / "c.wav", base / "a.wav"
            side(caller, length, 1)
            side(agent, length, 2)
            started = time.perf_counter()
            voice_figures(speech_frames(caller), speech_frames(agent))
            vad_s = time.perf_counter() - started
            started = time.perf_counter()
            encoded = encode_call(caller, agent, base / "call.ogg")
            encode_s = time.perf_counter() - started
            started = time.perf_counter()
            decode_call(base / "call.ogg")
            decode_s = time.perf_counter() - started
            wavs = caller.stat().st_size + agent.stat().st_size
            print(
                f"| {length:g} min | {vad_s * 1000:.0f} ms | {encode_s * 1000:.0f} ms | {decode_s * 1000:.0f} ms "
                f"| {wavs / 1e6:.1f} MB | {encoded.size / 1e6:.2f} MB | {wavs / encoded.size:.1f}x |"
            )


if __name__ == "__main__":
    main()
