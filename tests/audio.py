"""Audio analysis helpers for tests: "sound is verified, not assumed".

Every party of a test call gets its own tone (caller 440 Hz, agent 1000 Hz,
supervisor 1700 Hz); tests record what each party hears and assert with these
helpers which tones are in the recording.

Conventions
-----------
* Samples are ``numpy.float64`` arrays in [-1, 1] (16-bit PCM divided by 32768).
* "Power" means mean-square value in those units: a sine of amplitude ``A``
  has power ``A**2 / 2`` (0.3 amplitude -> 0.045 -> -13.5 dBFS RMS).

Thresholds (documented, see ``tone_present``)
---------------------------------------------
* ``DEFAULT_MIN_RATIO = 0.05``: a tone is "present" when the energy in a narrow
  band around it (Hann-windowed spectrum, +-``DEFAULT_BANDWIDTH_HZ`` but at least
  2.5 FFT bins) carries at least 5 % of the segment's total energy, i.e. the
  tone is no more than 13 dB below everything else put together.
  - Two equal tones mixed: each has ratio ~0.5; three: ~0.33.
  - A tone 10 dB under white noise spanning 0-4 kHz: ratio ~0.09 (present).
  - White noise alone puts ~0.5 % of its energy into a +-10 Hz band at 8 kHz
    (~1.25 % for 0.1 s segments where the band widens to +-25 Hz): absent.
  - G.711 quantisation noise is ~-38 dB, Hann side-lobe leakage between
    440/1000/1700 Hz is below -100 dB: both far under 5 %.
* ``DEFAULT_MIN_DBFS = -50``: the band must also hold at least -50 dBFS of
  power, so near-silence (dither, comfort noise) never "contains" a tone just
  because it contains nothing else.
"""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DEFAULT_MIN_RATIO = 0.05
DEFAULT_MIN_DBFS = -50.0
DEFAULT_BANDWIDTH_HZ = 10.0

# Tags of the parties of a test call.
CALLER_HZ = 440.0
AGENT_HZ = 1000.0
SUPERVISOR_HZ = 1700.0
DTMF_HZ = (697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0)


# --------------------------------------------------------------------------- WAV I/O


def read_wav(path: str | Path) -> tuple[FloatArray, int]:
    """Read a PCM WAV (8/16/24/32-bit integer or 32-bit float) as mono floats in [-1, 1].

    Multi-channel files are averaged to mono. The RIFF chunks are parsed by hand
    so a file whose header sizes were never finalised (a recorder killed before
    it closed the file: data size 0 or too large) still reads: the data chunk
    then extends to the end of the file.
    """
    raw = Path(path).read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    while pos + 8 <= len(raw):
        cid = raw[pos : pos + 4]
        (size,) = struct.unpack("<I", raw[pos + 4 : pos + 8])
        body_start = pos + 8
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", raw[body_start : body_start + 8])
            (bits,) = struct.unpack("<H", raw[body_start + 14 : body_start + 16])
            if tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: real tag in the sub-format GUID
                (tag,) = struct.unpack("<H", raw[body_start + 24 : body_start + 26])
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            end = body_start + size
            if size == 0 or end > len(raw):
                end = len(raw)
            data = raw[body_start:end]
            break
        pos = body_start + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError(f"{path}: missing fmt or data chunk")
    tag, channels, rate, bits = fmt
    samples = _pcm_to_float(data, tag, bits)
    if channels > 1:
        usable = len(samples) - len(samples) % channels
        samples = samples[:usable].reshape(-1, channels).mean(axis=1)
    return samples, rate


def _pcm_to_float(data: bytes, tag: int, bits: int) -> FloatArray:
    width = bits // 8
    data = data[: len(data) - len(data) % width]
    if tag == 3 and bits == 32:
        return np.frombuffer(data, dtype="<f4").astype(np.float64)
    if tag == 7 and bits == 8:
        return ulaw_decode(data)
    if tag == 6 and bits == 8:
        return alaw_decode(data)
    if tag != 1:
        raise ValueError(f"unsupported WAV format tag {tag}")
    if bits == 8:
        return (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if bits == 16:
        return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
    if bits == 24:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.float64) / float(1 << 23)
    if bits == 32:
        return np.frombuffer(data, dtype="<i4").astype(np.float64) / float(1 << 31)
    raise ValueError(f"unsupported PCM width {bits}")


def write_wav(path: str | Path, samples: npt.ArrayLike, rate: int = 8000) -> Path:
    """Write mono float samples (clipped to [-1, 1]) as a 16-bit PCM WAV."""
    arr = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0)
    pcm = np.round(arr * 32767.0).astype("<i2")
    out = Path(path)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return out


def tone(freq: float | Sequence[float], seconds: float, rate: int = 8000, amplitude: float = 0.3) -> FloatArray:
    """A sine (or an equal-amplitude sum of sines, each of ``amplitude``) of ``seconds``."""
    freqs = [float(freq)] if isinstance(freq, int | float) else [float(f) for f in freq]
    t = np.arange(round(seconds * rate), dtype=np.float64) / rate
    out = np.zeros_like(t)
    for f in freqs:
        out += amplitude * np.sin(2.0 * math.pi * f * t)
    return out


def write_tone_wav(path: str | Path, freq: float, seconds: float, rate: int = 8000, amplitude: float = 0.3) -> Path:
    """Write a pure tone WAV (8 kHz mono 16-bit by default) for a party to play.

    Use whole seconds: a whole number of periods of 440/1000/1700 Hz fit into one
    second at 8 kHz, so a looping player has no click at the seam.
    """
    return write_wav(path, tone(freq, seconds, rate, amplitude), rate)


def write_silence_wav(path: str | Path, seconds: float, rate: int = 8000) -> Path:
    return write_wav(path, np.zeros(round(seconds * rate)), rate)


# --------------------------------------------------------------------------- analysis


def rms_dbfs(samples: npt.ArrayLike) -> float:
    """RMS level in dBFS (full-scale sine peak = 1.0 gives -3.01 dBFS); ``-inf`` for silence/empty."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        return -math.inf
    ms = float(np.mean(arr * arr))
    return 10.0 * math.log10(ms) if ms > 0.0 else -math.inf


def goertzel_power(samples: npt.ArrayLike, rate: int, freq: float) -> float:
    """Power (mean-square units) of the ``freq`` component of ``samples`` (rectangular window).

    This is the Goertzel algorithm's output, computed as the equivalent single
    DFT term at an arbitrary (not necessarily bin-centred) frequency:
    ``2 * |sum x[n] e^{-j 2 pi f n / rate}|^2 / N^2``. A sine of amplitude ``A`` at
    exactly ``freq`` spanning a whole number of periods gives ``A**2 / 2``.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.size
    if n == 0:
        return 0.0
    w = 2.0 * math.pi * freq / rate
    idx = np.arange(n, dtype=np.float64)
    re = float(np.dot(x, np.cos(w * idx)))
    im = float(np.dot(x, np.sin(w * idx)))
    return 2.0 * (re * re + im * im) / (n * n)


def _spectrum(samples: FloatArray, rate: int) -> tuple[FloatArray, FloatArray]:
    """Hann-windowed one-sided energy spectrum, scaled so that its sum is the mean-square power."""
    n = samples.size
    win = np.hanning(n) if n > 1 else np.ones(n)
    spec = (np.abs(np.fft.rfft(samples * win)) ** 2).astype(np.float64)
    freqs = np.fft.rfftfreq(n, 1.0 / rate).astype(np.float64)
    total = float(spec.sum())
    ms = float(np.mean(samples * samples))
    if total > 0.0:
        spec = spec * (ms / total)
    return freqs, spec


def band_power(samples: npt.ArrayLike, rate: int, freq: float, bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ) -> float:
    """Power within ``freq +- max(bandwidth_hz, 2.5 bins)`` of a Hann-windowed spectrum."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return 0.0
    freqs, spec = _spectrum(x, rate)
    half = max(bandwidth_hz, 2.5 * rate / x.size)
    mask = np.abs(freqs - freq) <= half
    return float(spec[mask].sum())


def tone_ratio(samples: npt.ArrayLike, rate: int, freq: float, bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ) -> float:
    """Fraction (0..1) of the total energy that lies in the band around ``freq``."""
    x = np.asarray(samples, dtype=np.float64)
    total = float(np.mean(x * x)) if x.size else 0.0
    if total <= 0.0:
        return 0.0
    return band_power(x, rate, freq, bandwidth_hz) / total


def tone_present(
    samples: npt.ArrayLike,
    rate: int,
    freq: float,
    *,
    min_ratio: float = DEFAULT_MIN_RATIO,
    min_dbfs: float = DEFAULT_MIN_DBFS,
    bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ,
) -> bool:
    """Whether a tone at ``freq`` is audible in ``samples``.

    True when the band around ``freq`` holds at least ``min_ratio`` of the total
    energy AND at least ``min_dbfs`` of absolute power. See the module docstring
    for why 5 % / -50 dBFS separate "present" from "absent" robustly.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return False
    power = band_power(x, rate, freq, bandwidth_hz)
    total = float(np.mean(x * x))
    if total <= 0.0 or power <= 0.0:
        return False
    return power / total >= min_ratio and 10.0 * math.log10(power) >= min_dbfs


def segments(samples: npt.ArrayLike, rate: int, seconds: float, *, keep_partial: bool = False) -> list[FloatArray]:
    """Split into consecutive windows of ``seconds``; a shorter tail is dropped unless ``keep_partial``."""
    x = np.asarray(samples, dtype=np.float64)
    size = max(1, round(seconds * rate))
    out = [x[i : i + size] for i in range(0, x.size, size)]
    if out and out[-1].size < size and not keep_partial:
        out.pop()
    return out


def dominant_frequencies(
    samples: npt.ArrayLike,
    rate: int,
    n: int,
    *,
    min_separation_hz: float = 30.0,
    floor_db: float = -60.0,
) -> list[float]:
    """Up to ``n`` strongest spectral peaks (Hz, strongest first), at least ``min_separation_hz`` apart.

    Peaks weaker than ``floor_db`` relative to the strongest one are not reported
    (so a two-tone signal asked for 3 peaks returns 2). Peak positions are refined
    by parabolic interpolation on the log spectrum (error well under one bin).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size < 4 or n <= 0:
        return []
    freqs, spec = _spectrum(x, rate)
    spec[0] = 0.0  # DC is not a "frequency" a party plays
    bin_hz = rate / x.size
    order = np.argsort(spec)[::-1]
    floor = float(spec[order[0]]) * 10.0 ** (floor_db / 10.0)
    picked: list[float] = []
    for k in order:
        if spec[k] <= floor or spec[k] <= 0.0 or len(picked) >= n:
            break
        if k == 0 or k == spec.size - 1 or spec[k] < spec[k - 1] or spec[k] < spec[k + 1]:
            continue  # not a local maximum
        a, b, c = (math.log(max(float(v), 1e-300)) for v in spec[k - 1 : k + 2])
        denom = a - 2.0 * b + c
        delta = 0.5 * (a - c) / denom if denom != 0.0 else 0.0
        f = float(freqs[k]) + delta * bin_hz
        if all(abs(f - p) >= min_separation_hz for p in picked):
            picked.append(f)
    return picked


def max_step(samples: npt.ArrayLike) -> float:
    """Largest absolute sample-to-sample jump (a click detector)."""
    x = np.asarray(samples, dtype=np.float64)
    return float(np.max(np.abs(np.diff(x)))) if x.size > 1 else 0.0


# --------------------------------------------------------------------------- G.711


def ulaw_decode(data: bytes | bytearray | memoryview | npt.ArrayLike) -> FloatArray:
    """Decode G.711 mu-law bytes (PCMU, RTP PT 0) to floats in [-1, 1] (linear value / 32768).

    ITU-T G.711: bits are inverted, then sign(1) exponent(3) mantissa(4);
    magnitude = ((mantissa << 3) + 0x84) << exponent) - 0x84.
    """
    u = _as_bytes_array(data)
    u = ~u & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    linear = np.where(sign != 0, -magnitude, magnitude)
    return linear.astype(np.float64) / 32768.0


def alaw_decode(data: bytes | bytearray | memoryview | npt.ArrayLike) -> FloatArray:
    """Decode G.711 A-law bytes (PCMA, RTP PT 8) to floats in [-1, 1] (linear value / 32768).

    ITU-T G.711: even bits are inverted (xor 0x55), then sign(1, set = positive)
    exponent(3) mantissa(4); segment 0 is linear: (mantissa << 4) + 8,
    segment e > 0: ((mantissa << 4) + 0x108) << (e - 1).
    """
    a = _as_bytes_array(data) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = (a & 0x0F) << 4
    magnitude = np.where(exponent == 0, mantissa + 8, (mantissa + 0x108) << np.maximum(exponent - 1, 0))
    linear = np.where(sign != 0, magnitude, -magnitude)
    return linear.astype(np.float64) / 32768.0


def _to_int16(samples: npt.ArrayLike) -> npt.NDArray[np.int32]:
    x = np.round(np.asarray(samples, dtype=np.float64) * 32768.0)
    return np.clip(x, -32768, 32767).astype(np.int32)


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    """Encode floats in [-1, 1] as G.711 mu-law (for tests that send RTP audio).

    A vectorised port of the reference (Sun Microsystems) ``linear2ulaw``.
    """
    v = _to_int16(samples) >> 2  # 14-bit
    mask = np.where(v < 0, 0x7F, 0xFF)
    v = np.minimum(np.abs(v), 8159) + (0x84 >> 2)
    # segment: smallest s with v <= (0x40 << s) - 1
    seg = np.maximum(np.floor(np.log2(v)).astype(np.int32) - 5, 0)
    uval = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((v >> (np.minimum(seg, 7) + 1)) & 0x0F))
    return ((uval ^ mask) & 0xFF).astype(np.uint8).tobytes()


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """Encode floats in [-1, 1] as G.711 A-law: a vectorised port of the reference ``linear2alaw``."""
    v = _to_int16(samples) >> 3  # 13-bit, arithmetic shift like the C code
    mask = np.where(v >= 0, 0xD5, 0x55)
    v = np.where(v >= 0, v, -v - 1)
    # segment: smallest s with v <= (0x20 << s) - 1
    seg = np.where(v < 32, 0, np.floor(np.log2(np.maximum(v, 1))).astype(np.int32) - 4)
    mant = np.where(seg < 2, v >> 1, v >> np.maximum(seg, 1)) & 0x0F
    aval = (seg << 4) | mant
    return ((aval ^ mask) & 0xFF).astype(np.uint8).tobytes()


def _as_bytes_array(data: bytes | bytearray | memoryview | npt.ArrayLike) -> npt.NDArray[np.int32]:
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(bytes(data), dtype=np.uint8).astype(np.int32)
    return np.asarray(data, dtype=np.int32) & 0xFF
