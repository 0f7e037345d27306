"""Voice figures: pure on frame decisions, then webrtcvad on spoken segments of known length."""

from __future__ import annotations

import wave
from array import array
from pathlib import Path

import pytest

from dialplan.voice_analytics import FRAME_S, HANGOVER_FRAMES, held, voice_figures
from peers.require import require_program
from telephony.media_assets import synthesize_greeting
from telephony.voice_activity import speech_frames

RATE = 8000


def frames(*runs: tuple[bool, float]) -> list[bool]:
    return [speech for speech, seconds in runs for _ in range(round(seconds / FRAME_S))]


def test_short_gaps_between_words_count_as_talk_longer_ones_as_silence() -> None:
    assert held([True, False, False], hangover=1) == [True, True, False]
    gap = frames((True, 1.0), (False, 0.2), (True, 1.0))
    assert all(held(gap)), "a 200 ms gap between words is talk"
    pause = frames((True, 1.0), (False, 1.0))
    assert held(pause).count(True) == 50 + HANGOVER_FRAMES


def test_figures_from_frame_decisions() -> None:
    # 10 s: the caller talks 0-4 s, the agent 3-7 s (1 s over each other), then 3 s of silence.
    caller = frames((True, 4.0), (False, 6.0))
    agent = frames((False, 3.0), (True, 4.0), (False, 3.0))
    figures = voice_figures(caller, agent)
    hang = HANGOVER_FRAMES * FRAME_S
    assert figures.caller_talk_pct == pytest.approx(100 * (4 + hang) / 10, abs=0.1)
    assert figures.agent_talk_pct == pytest.approx(100 * (4 + hang) / 10, abs=0.1)
    assert figures.overtalk_pct == pytest.approx(100 * (1 + hang) / 10, abs=0.1)
    assert figures.longest_silence_s == pytest.approx(3 - hang)
    assert figures.trailing_silence_s == pytest.approx(3 - hang)
    assert voice_figures([], []).caller_talk_pct == 0.0


def write_segments(path: Path, parts: list[tuple[Path | None, float]]) -> float:
    """A WAV of speech files and silences (None, seconds) in turn; returns the seconds of speech."""
    pcm = array("h")
    spoken = 0.0
    for source, seconds in parts:
        if source is None:
            pcm.extend([0] * round(seconds * RATE))
            continue
        with wave.open(str(source), "rb") as wav:
            chunk = array("h", wav.readframes(wav.getnframes()))
        pcm.extend(chunk)
        spoken += len(chunk) / RATE
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return spoken


def test_webrtcvad_finds_known_talk_and_silence_within_five_points(tmp_path: Path) -> None:
    require_program("espeak-ng")
    caller_words = synthesize_greeting("Hello, I am calling about my order from last week.", tmp_path)
    agent_words = synthesize_greeting("Of course, let me look that up for you right away.", tmp_path)
    assert caller_words is not None
    assert agent_words is not None
    caller_spoken = write_segments(tmp_path / "caller.wav", [(caller_words, 0), (None, 6.0)])
    agent_spoken = write_segments(tmp_path / "agent.wav", [(None, 3.5), (agent_words, 0), (None, 4.0)])
    caller, agent = speech_frames(tmp_path / "caller.wav"), speech_frames(tmp_path / "agent.wav")
    total = max(len(caller), len(agent)) * FRAME_S
    figures = voice_figures(caller, agent)
    print(f"\n{figures} over {total:.1f} s; spoken {caller_spoken:.1f} s and {agent_spoken:.1f} s")
    assert figures.caller_talk_pct == pytest.approx(100 * caller_spoken / total, abs=5)
    assert figures.agent_talk_pct == pytest.approx(100 * agent_spoken / total, abs=5)
    assert figures.overtalk_pct <= 5, "they never spoke at once"
    assert figures.trailing_silence_s == pytest.approx(4.0, abs=0.5)
