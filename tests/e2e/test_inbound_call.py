"""A caller dials a client's hotline: greeting, music, and an authoritative record.

Real peers only: the bridge runs as `hotline serve`; callers are sipp and
the pjsua2 test caller, each in its own process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audio import read_wav, rms_dbfs, tone_ratio
from harness.bridge import BridgeProcess
from peers.peer_process import run_caller
from peers.rtp import RtpSink
from peers.sipp import sipp_calls
from telephony.media_assets import HOLD_MUSIC_NOTES_HZ

pytestmark = [pytest.mark.peers]


def music_share(samples: np.ndarray, rate: int) -> float:
    """Share of the signal's energy that lies on the hold-music notes."""
    return sum(tone_ratio(samples, rate, f, bandwidth_hz=12) for f in HOLD_MUSIC_NOTES_HZ)


async def test_sipp_call_is_answered_queued_and_recorded_as_abandoned(bridge: BridgeProcess, tmp_path: Path) -> None:
    async with await RtpSink.open() as sink:
        result = await sipp_calls(
            f"127.0.0.1:{bridge.sip_port}",
            workdir=tmp_path / "sipp",
            rtp_ports=[sink.port],
            callee="1001",
            caller="0612345678",
            hold_s=5.0,
        )
        assert result.ok, result.describe()
        assert result.final_statuses() == [200]
        # The bridge sent media for the whole call: greeting, then music.
        assert sink.payload_type == 0
        assert sink.duration_s() > 4.0
        heard = sink.samples()
        assert rms_dbfs(heard) > -45

    (call_length,) = result.call_lengths_s
    calls = await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"])
    assert len(calls) == 1
    record = calls[0]
    assert record["outcome"] == "abandoned"
    assert record["client_id"] == "acme"
    assert record["did"] == "1001"
    assert record["caller"] == "0612345678"
    assert record["ended_by"] == "caller"
    assert record["queue_wait_s"] == pytest.approx(call_length, abs=0.3)

    detail = await bridge.call(record["id"])
    kinds = [e["kind"] for e in detail["events"]]
    assert kinds[:3] == ["arrived", "answered_by_bridge", "queued"]
    assert "greeting_started" in kinds
    assert kinds[-1] == "ended"


async def test_pjsua_caller_hears_the_greeting_then_the_music(bridge: BridgeProcess, tmp_path: Path) -> None:
    result = await run_caller(bridge.uri("1001"), record=tmp_path / "heard.wav", hangup_after=9.0, max_seconds=20)
    assert result.ok, result.describe()
    calls = await bridge.wait_for_calls(lambda cs: cs and cs[0]["outcome"])
    detail = await bridge.call(calls[0]["id"])
    at = {e["kind"]: e["mono"] for e in detail["events"]}
    greeting_s = at["music_started"] - at["greeting_started"]
    assert 1.0 < greeting_s < 8.0, "the demo greeting is a sentence of speech"

    assert result.recording is not None
    samples, rate = read_wav(result.recording)
    # The recording starts when the caller's media starts, within a few ms of the greeting.
    greeting = samples[int(0.3 * rate) : int((greeting_s - 0.3) * rate)]
    music = samples[int((greeting_s + 0.5) * rate) : int((greeting_s + 3.5) * rate)]
    assert rms_dbfs(greeting) > -40, "the greeting carries energy"
    assert music_share(greeting, rate) < 0.3, "the greeting is not the music"
    assert rms_dbfs(music) > -40
    assert music_share(music, rate) > 0.8, "after the greeting, the caller hears the hold music"
