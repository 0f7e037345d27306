"""Media assets are heard by callers and analysed by tests: check what they contain."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import structlog

from audio import (
    AGENT_HZ,
    CALLER_HZ,
    DTMF_HZ,
    SUPERVISOR_HZ,
    band_power,
    dominant_frequencies,
    max_step,
    read_wav,
    rms_dbfs,
    segments,
    tone,
    tone_present,
    tone_ratio,
    write_wav,
)
from peers.require import require_espeak
from telephony import media_assets
from telephony.media_assets import (
    FALLBACK_GREETING_HZ,
    HOLD_MUSIC_NOTES_HZ,
    ensure_fallback_greeting,
    ensure_hold_music,
    greeting_for,
    resample,
    synthesize_greeting,
)

RATE = 8000
PARTY_TAGS = (CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ)


def wav_format(path: Path) -> tuple[int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate()


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    x, rate = read_wav(ensure_hold_music(tmp_path_factory.mktemp("music")))
    assert rate == RATE
    return x


@pytest.fixture(scope="module")
def chime(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    x, rate = read_wav(ensure_fallback_greeting(tmp_path_factory.mktemp("chime")))
    assert rate == RATE
    return x


# --------------------------------------------------------------------- hold music


def test_hold_music_format_and_length(tmp_path: Path) -> None:
    path = ensure_hold_music(tmp_path)
    assert wav_format(path) == (1, 2, RATE)
    x, _ = read_wav(path)
    assert x.size / RATE == pytest.approx(16.0)


def test_hold_music_contains_each_of_its_notes(music: np.ndarray) -> None:
    for f in HOLD_MUSIC_NOTES_HZ:
        assert tone_present(music, RATE, f, min_ratio=0.03), f
    # nothing but the notes: +-10 Hz around them (their decay broadens each line) holds > 99 %
    notes_energy = sum(band_power(music, RATE, f, 10.0) for f in HOLD_MUSIC_NOTES_HZ)
    assert notes_energy / np.mean(music**2) > 0.99


@pytest.mark.parametrize("forbidden", [*PARTY_TAGS, 880.0])
def test_hold_music_has_no_party_tag_frequency(music: np.ndarray, forbidden: float) -> None:
    # +-20 Hz: G4 (392 Hz) is 48 Hz below 440; its skirt leaves ~6e-6 of the energy there
    assert tone_ratio(music, RATE, forbidden, bandwidth_hz=20.0) < 1e-4
    for window in segments(music, RATE, 0.5):
        assert not tone_present(window, RATE, forbidden, min_ratio=0.005)


@pytest.mark.parametrize("dtmf", DTMF_HZ)
def test_hold_music_has_no_dtmf_frequency(music: np.ndarray, dtmf: float) -> None:
    # G5 (783.99 Hz) sits 14 Hz from the 770 Hz row tone: measured with a +-5 Hz band its
    # skirt leaves ~3e-4 of the energy there; every other DTMF tone is far cleaner.
    limit = 1e-3 if dtmf == 770.0 else 1e-4
    assert tone_ratio(music, RATE, dtmf, bandwidth_hz=5.0) < limit
    # above 1.1 kHz (all DTMF column tones) there is nothing at all
    spectrum = np.abs(np.fft.rfft(music)) ** 2
    freqs = np.fft.rfftfreq(music.size, 1 / RATE)
    assert spectrum[freqs > 1100].sum() / spectrum.sum() < 1e-6


def test_hold_music_level(music: np.ndarray) -> None:
    peak_dbfs = 20 * math.log10(np.max(np.abs(music)))
    assert peak_dbfs == pytest.approx(-12.0, abs=0.5)
    assert -30 < rms_dbfs(music) < -16
    # never silent for long: every second has sound
    assert all(rms_dbfs(s) > -40 for s in segments(music, RATE, 1.0))


def test_hold_music_has_no_clicks_and_loops_smoothly(music: np.ndarray) -> None:
    # A sum of sines up to 784 Hz at this level cannot move faster than this per sample;
    # a click (discontinuity) would.
    bound = 2 * math.pi * max(HOLD_MUSIC_NOTES_HZ) / RATE * 0.3
    assert max_step(music) < bound
    looped = np.concatenate([music[-400:], music[:400]])
    assert abs(music[-1] - music[0]) <= max_step(music)
    assert max_step(looped) < bound
    # the seam region has no broadband energy either
    seam_hf = band_power(looped, RATE, 3000.0, 900.0)
    assert seam_hf < 1e-7


def test_hold_music_is_generated_once_and_atomically(tmp_path: Path) -> None:
    first = ensure_hold_music(tmp_path)
    mtime = first.stat().st_mtime_ns
    assert ensure_hold_music(tmp_path) == first
    assert first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left
    first.write_bytes(b"truncated")  # a damaged cache entry is regenerated
    assert ensure_hold_music(tmp_path) == first
    assert wav_format(first) == (1, 2, RATE)


# --------------------------------------------------------------------- fallback chime


def test_fallback_greeting_shape(tmp_path: Path, chime: np.ndarray) -> None:
    assert wav_format(ensure_fallback_greeting(tmp_path)) == (1, 2, RATE)
    assert chime.size / RATE == pytest.approx(3.0)
    sound, silence = chime[: int(2.5 * RATE)], chime[int(2.5 * RATE) :]
    assert not silence.any()
    assert rms_dbfs(sound) > -30
    assert abs(sound[-1]) < 1e-3  # the chime has faded out before the silence
    assert max_step(chime) < 2 * math.pi * max(FALLBACK_GREETING_HZ) / RATE * 0.35


def test_fallback_greeting_frequencies(chime: np.ndarray) -> None:
    sound = chime[: int(2.5 * RATE)]
    found = dominant_frequencies(sound, RATE, 4, floor_db=-40)
    assert sorted(round(f) for f in found) == sorted(round(f) for f in FALLBACK_GREETING_HZ)
    for f in FALLBACK_GREETING_HZ:
        assert tone_present(sound, RATE, f)
    forbidden = [*PARTY_TAGS, 880.0, *DTMF_HZ, *HOLD_MUSIC_NOTES_HZ]
    for f in forbidden:
        assert tone_ratio(sound, RATE, f, bandwidth_hz=10.0) < 1e-4, f


def test_greeting_frequencies_keep_clear_of_the_tags() -> None:
    for f in FALLBACK_GREETING_HZ:
        assert abs(f - CALLER_HZ) > 40
        assert abs(f - 2 * CALLER_HZ) > 40
        assert abs(f - AGENT_HZ) > 80
        assert abs(f - SUPERVISOR_HZ) > 80
        assert all(abs(f - d) / d > 0.035 for d in DTMF_HZ)
        assert all(abs(f - n) > 50 for n in HOLD_MUSIC_NOTES_HZ)
    for n in HOLD_MUSIC_NOTES_HZ:
        assert abs(n - CALLER_HZ) > 40
        assert abs(n - AGENT_HZ) > 80
        assert abs(n - SUPERVISOR_HZ) > 80


# --------------------------------------------------------------------- resampler


def test_resampler_keeps_a_tone_frequency() -> None:
    x = tone(1000.0, 1.0, rate=22050, amplitude=0.5)
    y = np.array(resample(list(x), 22050, 8000))
    assert y.size == 8000
    body = y[200:-200]  # away from the zero-padded edges
    assert dominant_frequencies(body, RATE, 1)[0] == pytest.approx(1000.0, abs=0.5)
    assert tone_ratio(body, RATE, 1000.0) > 0.999
    assert rms_dbfs(body) == pytest.approx(rms_dbfs(x), abs=0.1)  # unity gain in the pass band


def test_resampler_does_not_alias_content_above_the_new_nyquist() -> None:
    x = tone(6000.0, 1.0, rate=22050, amplitude=0.5)  # would fold to 2000 Hz at 8 kHz
    y = np.array(resample(list(x), 22050, 8000))
    body = y[200:-200]
    assert rms_dbfs(body) < rms_dbfs(x) - 60
    assert band_power(body, RATE, 2000.0, 20.0) < 1e-7


@pytest.mark.parametrize(("src", "freq"), [(48000, 440.0), (16000, 1700.0), (44100, 300.0), (11025, 3000.0)])
def test_resampler_common_rates(src: int, freq: float) -> None:
    x = tone(freq, 0.5, rate=src)
    y = np.array(resample(list(x), src, RATE))
    assert y.size == RATE // 2
    assert dominant_frequencies(y[100:-100], RATE, 1)[0] == pytest.approx(freq, abs=2.0)


def test_resampler_upsamples_and_passes_identity() -> None:
    x = tone(1000.0, 0.25, rate=8000)
    assert resample(list(x), 8000, 8000) == list(x)
    y = np.array(resample(list(x), 8000, 16000))
    assert y.size == 4000
    assert dominant_frequencies(y[100:-100], 16000, 1)[0] == pytest.approx(1000.0, abs=2.0)
    assert resample([], 22050, 8000) == []
    with pytest.raises(ValueError, match="positive"):
        resample([0.0], 0, 8000)


# --------------------------------------------------------------------- speech and greeting choice


def test_espeak_synthesis_is_8k_mono_speech(tmp_path: Path) -> None:
    require_espeak()
    path = synthesize_greeting("Thank you for calling. Please hold the line.", tmp_path)
    assert path is not None
    assert wav_format(path) == (1, 2, RATE)
    x, _ = read_wav(path)
    assert 1.5 < x.size / RATE < 8
    assert rms_dbfs(x) > -35
    # speech energy sits in the voice band, and its pitch moves: no single steady tone
    assert band_power(x, RATE, 1000.0, 700.0) / np.mean(x**2) > 0.5
    assert max(tone_ratio(x, RATE, f) for f in (*PARTY_TAGS, *FALLBACK_GREETING_HZ)) < 0.05
    voiced = [s for s in segments(x, RATE, 0.1) if rms_dbfs(s) > -40]
    assert len(voiced) > 10
    # cached: same text and voice -> same file, not rewritten
    mtime = path.stat().st_mtime_ns
    assert synthesize_greeting("Thank you for calling. Please hold the line.", tmp_path) == path
    assert path.stat().st_mtime_ns == mtime
    assert synthesize_greeting("Another text", tmp_path) != path


def test_espeak_text_is_never_an_option(tmp_path: Path) -> None:
    require_espeak()
    path = synthesize_greeting("--version -w /tmp/evil.wav", tmp_path)
    assert path is not None
    assert path.parent == tmp_path
    assert not Path("/tmp/evil.wav").exists()
    with pytest.raises(ValueError, match="voice"):
        synthesize_greeting("hi", tmp_path, voice="-w/tmp/x")


def test_synthesis_without_espeak_returns_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_assets, "_espeak_path", lambda: None)
    assert synthesize_greeting("hello", tmp_path) is None


def test_greeting_for_prefers_wav_then_text_then_chime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = write_wav(tmp_path / "own.wav", tone(600.0, 1.0))
    assert greeting_for("ignored text", str(own), tmp_path / "c") == (own, "wav")
    path, kind = greeting_for("  ", None, tmp_path / "c")
    assert kind == "chime"
    assert path == ensure_fallback_greeting(tmp_path / "c")
    path, kind = greeting_for(None, str(tmp_path / "missing.wav"), tmp_path / "c")
    assert kind == "chime"
    if media_assets._espeak_path() is not None:
        path, kind = greeting_for("Welcome", None, tmp_path / "c")
        assert kind == "tts"
        assert path.name.startswith("greeting-tts-")


def test_greeting_wav_in_another_format_is_converted(tmp_path: Path) -> None:
    src = tmp_path / "client.wav"
    left = np.round(tone(600.0, 1.0, rate=44100) * 32767).astype("<i2")
    with wave.open(str(src), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(np.column_stack([left, left]).tobytes())
    path, kind = greeting_for(None, str(src), tmp_path / "cache")
    assert kind == "wav"
    assert path != src
    assert wav_format(path) == (1, 2, RATE)
    x, _ = read_wav(path)
    assert x.size == RATE
    assert dominant_frequencies(x[100:-100], RATE, 1)[0] == pytest.approx(600.0, abs=1.0)


def test_missing_espeak_warning_is_logged_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_assets, "_espeak_path", lambda: None)
    monkeypatch.setattr(media_assets, "_espeak_missing_warned", False)
    with structlog.testing.capture_logs() as logs:
        first = greeting_for("Hello", None, tmp_path)
        second = greeting_for("Hello again", None, tmp_path)
    assert first[1] == second[1] == "chime"
    warnings = [e for e in logs if "espeak-ng not installed" in e["event"]]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
