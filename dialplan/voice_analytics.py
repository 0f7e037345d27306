"""What a call sounded like: who talked how much, over whom, and the silences. Pure.

Input is one voice-activity decision per 20 ms frame for each side (caller
and agent), as webrtcvad gives them; output is the share of the call each
side talked, the share both talked at once, the longest stretch of silence
from both, and the silence at the end (what the padding flag looks at).

Voice activity detectors mark the short gaps between words as silence. A
decision is held for `HANGOVER_FRAMES` after speech (300 ms), as telephony
VADs do, so "talking" means what a listener would call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FRAME_S = 0.02
HANGOVER_FRAMES = 15


@dataclass(frozen=True)
class VoiceFigures:
    caller_talk_pct: float
    agent_talk_pct: float
    overtalk_pct: float
    longest_silence_s: float
    trailing_silence_s: float

    def to_json(self) -> dict[str, float]:
        return {
            "caller_talk_pct": self.caller_talk_pct,
            "agent_talk_pct": self.agent_talk_pct,
            "overtalk_pct": self.overtalk_pct,
            "longest_silence_s": self.longest_silence_s,
            "trailing_silence_s": self.trailing_silence_s,
        }


def held(frames: Sequence[bool], hangover: int = HANGOVER_FRAMES) -> list[bool]:
    """Each speech decision held for `hangover` frames after it."""
    out: list[bool] = []
    left = 0
    for speech in frames:
        if speech:
            left = hangover
            out.append(True)
        else:
            out.append(left > 0)
            left = max(0, left - 1)
    return out


def voice_figures(caller: Sequence[bool], agent: Sequence[bool]) -> VoiceFigures:
    """The figures over the longer of the two sides (the shorter is silent past its end)."""
    n = max(len(caller), len(agent))
    if n == 0:
        return VoiceFigures(0.0, 0.0, 0.0, 0.0, 0.0)
    c = held(caller) + [False] * (n - len(caller))
    a = held(agent) + [False] * (n - len(agent))
    longest = run = 0
    for i in range(n):
        run = 0 if c[i] or a[i] else run + 1
        longest = max(longest, run)
    return VoiceFigures(
        caller_talk_pct=round(100 * sum(c) / n, 1),
        agent_talk_pct=round(100 * sum(a) / n, 1),
        overtalk_pct=round(100 * sum(x and y for x, y in zip(c, a, strict=True)) / n, 1),
        longest_silence_s=round(longest * FRAME_S, 2),
        trailing_silence_s=round(run * FRAME_S, 2),
    )
