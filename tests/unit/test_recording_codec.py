"""A call's two recorded sides become one Ogg Opus file, caller left and agent right, each tone where it belongs."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from audio import AGENT_HZ, CALLER_HZ, tone, tone_present, write_silence_wav, write_tone_wav, write_wav
from telephony.recording_codec import RecordingFileError, decode_call, encode_call, read_side

RATE = 8000


def as_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float64) / 32768


def test_each_side_has_its_own_channel_and_the_file_is_a_tenth_of_the_wavs(tmp_path: Path) -> None:
    caller = write_tone_wav(tmp_path / "c.wav", CALLER_HZ, 6.0)
    agent = write_tone_wav(tmp_path / "a.wav", AGENT_HZ, 6.0)
    encoded = encode_call(caller, agent, tmp_path / "call.ogg")
    assert encoded.duration_ms == 6000
    assert encoded.size == (tmp_path / "call.ogg").stat().st_size
    assert encoded.size < (caller.stat().st_size + agent.stat().st_size) / 5
    assert (tmp_path / "call.ogg").read_bytes()[:4] == b"OggS"
    left, right = decode_call(tmp_path / "call.ogg")
    assert len(left) / RATE == pytest.approx(6.0, abs=0.05)
    body = slice(RATE // 2, -RATE // 2)  # the codec's first and last frames ramp
    assert tone_present(as_float(left[body]), RATE, CALLER_HZ)
    assert not tone_present(as_float(left[body]), RATE, AGENT_HZ)
    assert tone_present(as_float(right[body]), RATE, AGENT_HZ)
    assert not tone_present(as_float(right[body]), RATE, CALLER_HZ)


def test_sides_of_different_lengths_are_aligned_at_the_start(tmp_path: Path) -> None:
    # On-demand recording of a second agent: the agent's side can be shorter.
    caller = write_tone_wav(tmp_path / "c.wav", CALLER_HZ, 4.0)
    agent = write_wav(tmp_path / "a.wav", np.concatenate([tone(AGENT_HZ, 2.0)]))
    encoded = encode_call(caller, agent, tmp_path / "call.ogg")
    assert encoded.duration_ms == 4000
    left, right = decode_call(tmp_path / "call.ogg")
    assert tone_present(as_float(right[RATE // 2 : int(1.5 * RATE)]), RATE, AGENT_HZ)
    assert np.abs(as_float(right[int(2.5 * RATE) :])).max() < 0.01
    assert tone_present(as_float(left[int(2.5 * RATE) : int(3.5 * RATE)]), RATE, CALLER_HZ)


def test_a_side_whose_header_was_never_finalised_still_reads(tmp_path: Path) -> None:
    # A worker killed mid-call leaves the RIFF and data sizes as they were when the file was opened.
    path = write_tone_wav(tmp_path / "c.wav", CALLER_HZ, 2.0)
    raw = bytearray(path.read_bytes())
    data_at = raw.index(b"data")
    raw[4:8] = struct.pack("<I", 0)
    raw[data_at + 4 : data_at + 8] = struct.pack("<I", 0)
    path.write_bytes(bytes(raw))
    rate, samples = read_side(path)
    assert (rate, len(samples)) == (RATE, 2 * RATE)


def test_what_is_not_16_bit_mono_pcm_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(RecordingFileError, match=r"junk\.wav: not a WAV file"):
        read_side(tmp_path / "junk.wav")
    silence = write_silence_wav(tmp_path / "s.wav", 1.0)
    with pytest.raises(RecordingFileError, match="differ in rate"):
        encode_call(silence, write_silence_wav(tmp_path / "s16.wav", 1.0, rate=16000), tmp_path / "x.ogg")
    assert not (tmp_path / "x.ogg").exists()
