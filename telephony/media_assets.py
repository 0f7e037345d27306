"""The bridge's media files: hold music, the fallback greeting chime, spoken greetings.

Everything the media workers play is an 8 kHz mono 16-bit PCM WAV (the
conference bridge's format), generated once into a cache directory and reused:

* ``ensure_hold_music(cache_dir)``: a ~16 s seamlessly looping arpeggio of soft
  sine notes built only from ``HOLD_MUSIC_NOTES_HZ``.
* ``ensure_fallback_greeting(cache_dir)``: a 2.5 s "ding-dong" chime of
  ``FALLBACK_GREETING_HZ`` followed by 0.5 s of silence.
* ``synthesize_greeting(text, cache_dir)``: the text spoken by espeak-ng (when it
  is installed), resampled to 8 kHz; None without espeak-ng.
* ``greeting_for(text, wav, cache_dir)``: the greeting to play for a client and
  its kind: an explicit WAV > synthesised text > the chime.

Frequencies are chosen around the tests' tags: call parties are told apart by
tones at 440 Hz (caller), 1000 Hz (agent) and 1700 Hz (supervisor), so no
generated sound carries energy near them, nor at DTMF frequencies (rows 697,
770, 852, 941 Hz; columns 1209, 1336, 1477, 1633 Hz). The music stays below
800 Hz, far from every DTMF column tone, so it can never form a digit; its
783.99 Hz note is 14 Hz from the 770 Hz row tone, which alone is no digit.

Pure standard library (numpy is a test-only dependency): synthesis and the
windowed-sinc resampler work on Python floats and ``array('h')``; they run once
per asset and the results are cached (content version / sha256 in the name).
All writes are atomic (temporary file in the same directory + os.replace).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import operator
import os
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import structlog

RATE: Final = 8000

HOLD_MUSIC_NOTES_HZ: Final[tuple[float, ...]] = (261.63, 329.63, 392.00, 523.25, 659.25, 783.99)
"""C4 E4 G4 C5 E5 G5: the only frequencies in the hold music."""

FALLBACK_GREETING_HZ: Final[tuple[float, ...]] = (1396.91, 1108.73)
"""F6 then C#6 (a falling major third, a doorbell): clear of 440+-40, 880 (2 x 440),
1000+-80, 1700+-80, more than 3.5 % from every DTMF tone, and more than 50 Hz from
every hold-music note."""

HOLD_MUSIC_VERSION: Final = 1
FALLBACK_GREETING_VERSION: Final = 1
SPEECH_VERSION: Final = 1

HOLD_MUSIC_SECONDS: Final = 16.0
HOLD_MUSIC_PEAK_DBFS: Final = -12.0
GREETING_PEAK_DBFS: Final = -10.0
SPEECH_PEAK_DBFS: Final = -6.0

GreetingKind = Literal["wav", "tts", "chime"]

_ESPEAK = "espeak-ng"
_ESPEAK_TIMEOUT_S: Final = 60.0
_VOICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+./-]{0,63}$")
_espeak_missing_warned = False

# C4=0 E4=1 G4=2 C5=3 E5=4 G5=5; 32 notes, one every 0.5 s = 16 s.
_ARPEGGIO: Final[tuple[int, ...]] = (
    0, 1, 2, 3, 4, 3, 2, 1,
    0, 2, 3, 5, 4, 3, 2, 1,
    0, 1, 2, 4, 5, 4, 2, 1,
    0, 2, 3, 4, 3, 2, 1, 2,
)  # fmt: skip


def _log() -> Any:
    return structlog.get_logger("telephony.media_assets")


# ----------------------------------------------------------------------------- WAV I/O


def _write_wav_atomic(path: Path, samples: Sequence[float] | array[int], rate: int = RATE) -> Path:
    """Write mono 16-bit PCM: floats in [-1, 1] (scaled, clipped) or an ``array('h')`` as is."""
    pcm = samples if isinstance(samples, array) else _to_pcm16(samples)
    if sys.byteorder != "little":
        pcm = array("h", pcm)
        pcm.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _to_pcm16(samples: Sequence[float]) -> array[int]:
    return array("h", (max(-32768, min(32767, round(s * 32767.0))) for s in samples))


def _read_wav(path: Path) -> tuple[list[float], int]:
    """Integer PCM WAV (8/16/24/32-bit, any channel count) as mono floats in [-1, 1]."""
    with wave.open(str(path), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        frames = w.readframes(w.getnframes())
    if width == 1:
        values = [(b - 128) / 128.0 for b in frames]
    elif width in (2, 4):
        data = array("h" if width == 2 else "i", frames[: len(frames) - len(frames) % width])
        if data.itemsize != width:
            raise ValueError(f"{path}: unsupported sample width {width}")
        if sys.byteorder != "little":
            data.byteswap()
        scale = float(1 << (8 * width - 1))
        values = [v / scale for v in data]
    elif width == 3:
        values = [
            int.from_bytes(frames[i : i + 3], "little", signed=True) / 8388608.0 for i in range(0, len(frames) - 2, 3)
        ]
    else:
        raise ValueError(f"{path}: unsupported sample width {width}")
    if channels > 1:
        values = [sum(values[i : i + channels]) / channels for i in range(0, len(values) - channels + 1, channels)]
    return values, rate


def _is_telephony_wav(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == RATE
    except (wave.Error, EOFError, OSError):
        return False


def _expected_size(seconds: float) -> int:
    return 44 + 2 * round(seconds * RATE)


def _cached(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size and _is_telephony_wav(path)
    except OSError:
        return False


# ----------------------------------------------------------------------------- synthesis


def _envelope(t: float, length: float, attack: float, decay_tau: float, release: float) -> float:
    """Raised-cosine attack, exponential decay, raised-cosine release to exactly 0 at ``length``."""
    if t < 0.0 or t >= length:
        return 0.0
    level = math.exp(-t / decay_tau)
    if t < attack:
        level *= 0.5 - 0.5 * math.cos(math.pi * t / attack)
    tail = length - t
    if tail < release:
        level *= 0.5 - 0.5 * math.cos(math.pi * tail / release)
    return level


def _add_note(
    buf: list[float],
    *,
    start: int,
    freq: float,
    gain: float,
    envelope: Callable[[float], float],
    length_s: float,
    wrap: bool,
) -> None:
    """Mix one enveloped sine into ``buf``; with ``wrap`` the tail continues at the start (loops)."""
    n = len(buf)
    count = round(length_s * RATE)
    w = 2.0 * math.pi * freq / RATE
    for k in range(count):
        idx = start + k
        if idx >= n:
            if not wrap:
                break
            idx %= n
        buf[idx] += gain * envelope(k / RATE) * math.sin(w * k)


def _normalize(buf: list[float], peak_dbfs: float) -> list[float]:
    peak = max((abs(v) for v in buf), default=0.0)
    if peak == 0.0:
        return buf
    g = 10.0 ** (peak_dbfs / 20.0) / peak
    return [v * g for v in buf]


def hold_music_samples() -> list[float]:
    """The hold music as floats: 32 arpeggio notes of 1.6 s each, one every 0.5 s, mixed
    circularly so the notes ringing at the end continue at the start (a seamless loop)."""
    total = round(HOLD_MUSIC_SECONDS * RATE)
    buf = [0.0] * total
    step = total // len(_ARPEGGIO)
    note_s = 1.6

    def env(t: float) -> float:
        return _envelope(t, note_s, attack=0.04, decay_tau=0.55, release=0.35)

    for i, idx in enumerate(_ARPEGGIO):
        freq = HOLD_MUSIC_NOTES_HZ[idx]
        gain = 1.0 if freq < 500 else 0.8  # the upper octave a little softer
        _add_note(buf, start=i * step, freq=freq, gain=gain, envelope=env, length_s=note_s, wrap=True)
    return _normalize(buf, HOLD_MUSIC_PEAK_DBFS)


def fallback_greeting_samples() -> list[float]:
    """2.5 s chime (ding at 0 s, dong at 0.55 s) then 0.5 s of silence."""
    chime_s, silence_s = 2.5, 0.5
    buf = [0.0] * round((chime_s + silence_s) * RATE)
    ding, dong = FALLBACK_GREETING_HZ

    def env_ding(t: float) -> float:
        return _envelope(t, 1.9, attack=0.01, decay_tau=0.45, release=0.4)

    def env_dong(t: float) -> float:
        return _envelope(t, chime_s - 0.55, attack=0.01, decay_tau=0.6, release=0.5)

    _add_note(buf, start=0, freq=ding, gain=1.0, envelope=env_ding, length_s=1.9, wrap=False)
    _add_note(
        buf,
        start=round(0.55 * RATE),
        freq=dong,
        gain=1.0,
        envelope=env_dong,
        length_s=chime_s - 0.55,
        wrap=False,
    )
    return _normalize(buf, GREETING_PEAK_DBFS)


def ensure_hold_music(cache_dir: Path) -> Path:
    """The hold-music WAV in ``cache_dir``, generated once (named by its content version)."""
    path = Path(cache_dir) / f"hold-music-v{HOLD_MUSIC_VERSION}.wav"
    if not _cached(path, _expected_size(HOLD_MUSIC_SECONDS)):
        _write_wav_atomic(path, hold_music_samples())
    return path


def ensure_fallback_greeting(cache_dir: Path) -> Path:
    """The chime greeting WAV in ``cache_dir``, generated once (named by its content version)."""
    path = Path(cache_dir) / f"greeting-chime-v{FALLBACK_GREETING_VERSION}.wav"
    if not _cached(path, _expected_size(3.0)):
        _write_wav_atomic(path, fallback_greeting_samples())
    return path


# ----------------------------------------------------------------------------- resampling


def _blackman(u: float) -> float:
    """Blackman window on u in [-1, 1]."""
    return 0.42 + 0.5 * math.cos(math.pi * u) + 0.08 * math.cos(2.0 * math.pi * u)


def resample(samples: Sequence[float], src_rate: int, dst_rate: int, *, zero_crossings: int = 16) -> list[float]:
    """Band-limited resampling by a Blackman-windowed sinc (polyphase, rational ratio).

    The low-pass cutoff is 0.9 x the Nyquist frequency of the lower rate (3.6 kHz
    when going to 8 kHz), so content above the new Nyquist is removed before it
    could alias into the band (measured 22.05 -> 8 kHz: -1.6 dB at 3.4 kHz, below -70 dB
    from 4.2 kHz on, a 6 kHz tone -98 dB). Output sample ``n``
    is taken at input time ``n * src_rate / dst_rate``; kernels are computed once
    per distinct fractional phase.
    """
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError("sample rates must be positive")
    if src_rate == dst_rate or not samples:
        return list(samples)
    g = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    fc = 0.45 * min(src_rate, dst_rate) / src_rate  # cycles per input sample
    half = math.ceil(zero_crossings / (2.0 * fc))  # kernel half-width in input samples
    padded = [0.0] * half + list(samples) + [0.0] * (half + 1)
    n_out = -(-len(samples) * up // down)  # outputs at input times n * down / up < len(samples)
    phases: dict[int, list[float]] = {}

    def kernel(phase: int) -> list[float]:
        frac = phase / up
        taps = []
        for k in range(-half + 1, half + 1):
            x = frac - k  # distance (input samples) between output instant and input sample i0 + k
            u = x / half
            if abs(u) >= 1.0:
                taps.append(0.0)
                continue
            arg = 2.0 * fc * x
            sinc = 1.0 if arg == 0.0 else math.sin(math.pi * arg) / (math.pi * arg)
            taps.append(2.0 * fc * sinc * _blackman(u))
        return taps

    out: list[float] = []
    mul = operator.mul
    for n in range(n_out):
        pos = n * down
        i0, phase = divmod(pos, up)
        taps = phases.get(phase)
        if taps is None:
            taps = phases[phase] = kernel(phase)
        start = i0 + 1  # padded index of input sample i0 - half + 1
        out.append(sum(map(mul, taps, padded[start : start + len(taps)])))
    return out


# ----------------------------------------------------------------------------- greetings


def _espeak_path() -> str | None:
    return shutil.which(_ESPEAK)


def synthesize_greeting(text: str, cache_dir: Path, *, voice: str = "en") -> Path | None:
    """``text`` spoken by espeak-ng as an 8 kHz mono 16-bit WAV, cached by sha256(version, voice, text).

    Returns None when espeak-ng is not installed or fails. The text goes to
    espeak-ng's stdin (``--stdin``), never on its command line.
    """
    if not _VOICE_RE.match(voice):
        raise ValueError(f"invalid espeak-ng voice name {voice!r}")
    digest = hashlib.sha256(f"{SPEECH_VERSION}\0{voice}\0{text}".encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"greeting-tts-{digest}.wav"
    if _is_telephony_wav(path):
        return path
    espeak = _espeak_path()
    if espeak is None:
        return None
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".espeak-") as tmp:
        raw = Path(tmp) / "speech.wav"
        try:
            proc = subprocess.run(
                [espeak, "-v", voice, "-w", str(raw), "--stdin"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=_ESPEAK_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _log().warning("espeak-ng failed", voice=voice, error=str(exc))
            return None
        if proc.returncode != 0 or not raw.exists():
            _log().warning(
                "espeak-ng failed",
                voice=voice,
                returncode=proc.returncode,
                stderr=proc.stderr.decode(errors="replace")[-500:],
            )
            return None
        samples, rate = _read_wav(raw)
    speech = _normalize(resample(samples, rate, RATE), SPEECH_PEAK_DBFS)
    return _write_wav_atomic(path, speech)


def ensure_telephony_wav(src: Path, cache_dir: Path) -> Path:
    """``src`` itself when it is already 8 kHz mono 16-bit PCM; otherwise a converted copy in
    ``cache_dir`` (cached by sha256 of the file). Raises ValueError/wave.Error if unreadable."""
    if _is_telephony_wav(src):
        return src
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:24]
    path = Path(cache_dir) / f"greeting-wav-{digest}.wav"
    if _is_telephony_wav(path):
        return path
    samples, rate = _read_wav(src)
    return _write_wav_atomic(path, resample(samples, rate, RATE))


def greeting_for(
    client_greeting_text: str | None, wav: str | None, cache_dir: Path, *, voice: str = "en"
) -> tuple[Path, GreetingKind]:
    """The greeting a client's callers hear: its WAV, else its text spoken, else the chime.

    A configured WAV that is missing or unreadable is logged and skipped. Without
    espeak-ng, text greetings fall back to the chime with a warning logged once per
    process.
    """
    global _espeak_missing_warned
    cache = Path(cache_dir)
    if wav:
        src = Path(wav).expanduser()
        try:
            return ensure_telephony_wav(src, cache), "wav"
        except (OSError, ValueError, EOFError, wave.Error) as exc:
            _log().error("greeting wav unusable; falling back", wav=str(src), error=str(exc))
    text = (client_greeting_text or "").strip()
    if text:
        spoken = synthesize_greeting(text, cache, voice=voice)
        if spoken is not None:
            return spoken, "tts"
        if _espeak_path() is None and not _espeak_missing_warned:
            _espeak_missing_warned = True
            _log().warning("espeak-ng not installed; using the fallback chime for text greetings")
    return ensure_fallback_greeting(cache), "chime"


class SpeechCache:
    """Spoken prompts (queue announcements) as telephony WAVs, synthesised once per text.

    Synthesis runs espeak-ng in a thread, so the event loop never waits on
    it; a text already said is a cache hit on disk, as greetings are.
    """

    def __init__(self, cache_dir: Path, *, voice: str = "en") -> None:
        self.cache_dir = Path(cache_dir)
        self.voice = voice

    async def speech(self, text: str) -> str | None:
        path = await asyncio.to_thread(synthesize_greeting, text, self.cache_dir, voice=self.voice)
        return None if path is None else str(path)
