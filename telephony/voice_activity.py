"""Voice activity in a recorded side of a call: webrtcvad's decision for each 20 ms frame.

Runs on files after the call (in a thread, off the event loop), never on
the call's media path.
"""

from __future__ import annotations

from pathlib import Path

import webrtcvad

from telephony.recording_codec import RecordingFileError, read_side

FRAME_MS = 20
RATES = (8000, 16000, 32000, 48000)


def speech_frames(path: Path, aggressiveness: int = 2) -> list[bool]:
    """One decision per 20 ms frame of a mono 16-bit WAV at 8, 16, 32 or 48 kHz; a partial last frame is left out."""
    rate, samples = read_side(path)
    if rate not in RATES:
        raise RecordingFileError(f"{path.name}: webrtcvad takes {RATES} Hz, not {rate}")
    pcm = samples.astype("<i2").tobytes()
    vad = webrtcvad.Vad(aggressiveness)
    step = rate * FRAME_MS // 1000 * 2
    return [vad.is_speech(pcm[i : i + step], rate) for i in range(0, len(pcm) - step + 1, step)]
