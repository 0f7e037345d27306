"""Self-tests of the test peers: before they judge the bridge, they are judged against each other.

pjsua_caller <-> pjsua_answerer and sipp (+ RtpSink) <-> pjsua_answerer, with
every party's own tone (caller 440 Hz, answerer 1000 Hz) checked in the audio
each side recorded. Needs pjsua2 and sipp: skipped when missing, FAILED when
missing under CI=true.
"""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from audio import (
    AGENT_HZ,
    CALLER_HZ,
    SUPERVISOR_HZ,
    read_wav,
    rms_dbfs,
    segments,
    tone,
    tone_present,
    ulaw_encode,
    write_tone_wav,
)
from peers.peer_process import run_caller, start_answerer, start_caller
from peers.ports import free_port_range, free_udp_port
from peers.require import require_pjsua2, require_sipp
from peers.rtp import build_rtp, decode_packets, parse_rtp
from peers.sipp import (
    RtpSink,
    run_sipp,
    sipp_calls,
    uac_scenario,
    uas_digest_scenario,
    write_scenario,
)

RATE = 8000
ANSWERER_HZ = AGENT_HZ  # the far end in these self-tests plays the "agent" tone


@pytest.fixture
def tones(tmp_path: Path) -> dict[float, Path]:
    return {f: write_tone_wav(tmp_path / f"tone{int(f)}.wav", f, 1.0) for f in (CALLER_HZ, ANSWERER_HZ)}


@pytest.fixture
def pjsua2_required() -> None:
    require_pjsua2()


@pytest.fixture
def sipp_required() -> None:
    require_sipp()


def assert_hears(path: Path, present: float, absent: tuple[float, ...], *, skip_s: float = 0.2) -> None:
    """Every 0.5 s window of the recording (after ``skip_s``) has ``present`` and none of ``absent``."""
    samples, rate = read_wav(path)
    assert rate == RATE
    samples = samples[round(skip_s * rate) :]
    windows = segments(samples, rate, 0.5)
    assert windows, f"{path}: recording too short ({samples.size} samples)"
    for i, w in enumerate(windows):
        assert tone_present(w, rate, present), f"{path} window {i}: {present} Hz missing"
        for f in absent:
            assert not tone_present(w, rate, f), f"{path} window {i}: {f} Hz should not be heard"


# --------------------------------------------------------------------- pjsua caller <-> answerer


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required")
async def test_caller_and_answerer_hear_each_others_tone(tmp_path: Path, tones: dict[float, Path]) -> None:
    async with await start_answerer(
        play=tones[ANSWERER_HZ], record=tmp_path / "answerer-heard.wav", max_calls=1
    ) as answerer:
        result = await run_caller(
            answerer.uri_for("1001"),
            play=tones[CALLER_HZ],
            record=tmp_path / "caller-heard.wav",
            hangup_after=3,
            max_seconds=20,
        )
        assert result.ok, result.describe()
        ans = await answerer.wait(15)
    assert ans.ok, ans.describe()

    confirmed = result.first("state", state="CONFIRMED")
    done = result.first("done")
    assert confirmed is not None
    assert done is not None
    assert done["status"] == 200
    assert done["hungup_by"] == "local"
    assert done["connected_s"] == pytest.approx(3.0, abs=0.3)
    print(f"caller spawn -> CONFIRMED: {confirmed['t'] - result.spawned_at:.3f}s")

    assert result.recording is not None
    assert_hears(result.recording, ANSWERER_HZ, (CALLER_HZ, SUPERVISOR_HZ))
    assert_hears(tmp_path / "answerer-heard.wav", CALLER_HZ, (ANSWERER_HZ, SUPERVISOR_HZ))
    seconds = read_wav(result.recording)[0].size / RATE
    assert seconds == pytest.approx(3.0, abs=0.3)


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required")
async def test_caller_sends_headers_and_several_calls(tmp_path: Path, tones: dict[float, Path]) -> None:
    async with await start_answerer(play=tones[ANSWERER_HZ], record=tmp_path / "ans.wav", max_calls=3) as answerer:
        result = await run_caller(
            answerer.uri_for("1002"),
            play=tones[CALLER_HZ],
            record=tmp_path / "heard.wav",
            hangup_after=2,
            calls=3,
            headers=["X-Client-Id: 42", "X-Trace: abc def"],
            from_user="+15550100",
            max_seconds=20,
        )
        assert result.ok, result.describe()
        ans = await answerer.wait(15)
    incoming = ans.of("incoming")
    assert len(incoming) == 3
    for ev in incoming:
        assert ev["headers"]["X-Client-Id"] == "42"
        assert ev["headers"]["X-Trace"] == "abc def"
        assert "+15550100" in ev["from"]
        assert "1002" in ev["to"]
    assert [d["call"] for d in result.done] == [0, 1, 2]
    assert [p.name for p in result.recordings] == ["heard-0.wav", "heard-1.wav", "heard-2.wav"]
    for path in result.recordings:
        assert_hears(path, ANSWERER_HZ, (CALLER_HZ,))
    for path in (tmp_path / "ans.wav", tmp_path / "ans-1.wav", tmp_path / "ans-2.wav"):
        assert_hears(path, CALLER_HZ, (ANSWERER_HZ,))


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required")
async def test_caller_expect_status_for_rejected_call(tmp_path: Path) -> None:
    async with await start_answerer(reject=404) as answerer:
        expected = await run_caller(answerer.uri_for("9999"), expect_status=404, max_seconds=10)
        unexpected = await run_caller(answerer.uri_for("9999"), max_seconds=10)
    assert expected.returncode == 0, expected.describe()
    assert expected.done[0]["status"] == 404
    assert expected.first("state", state="CONFIRMED") is None
    assert unexpected.returncode == 1, unexpected.describe()
    assert unexpected.done[0]["status"] == 404
    assert unexpected.done[0]["ok"] is False


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required")
async def test_caller_waits_for_remote_hangup(tmp_path: Path, tones: dict[float, Path]) -> None:
    async with await start_answerer(play=tones[ANSWERER_HZ], hangup_after=1.5) as answerer:
        waits = await run_caller(answerer.uri_for("1"), max_seconds=10)
        impatient = await run_caller(answerer.uri_for("1"), hangup_after=5, max_seconds=10)
    assert waits.ok, waits.describe()
    assert waits.done[0]["hungup_by"] == "remote"
    assert waits.done[0]["connected_s"] == pytest.approx(1.5, abs=0.3)
    # it asked to hang up itself after 5 s, but the far end hung up first: not as expected
    assert impatient.returncode == 1
    assert impatient.done[0]["hungup_by"] == "remote"


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required")
async def test_answerer_rings_before_answering(tones: dict[float, Path]) -> None:
    async with await start_answerer(play=tones[ANSWERER_HZ], ring_seconds=1.0) as answerer:
        result = await run_caller(answerer.uri_for("1"), hangup_after=0.5, max_seconds=10)
    assert result.ok, result.describe()
    early = result.first("state", state="EARLY")
    confirmed = result.first("state", state="CONFIRMED")
    assert early is not None
    assert early["status"] == 180
    assert confirmed is not None
    assert confirmed["t"] - early["t"] == pytest.approx(1.0, abs=0.2)


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required")
async def test_caller_max_seconds_bounds_the_run(tmp_path: Path, tones: dict[float, Path]) -> None:
    async with await start_answerer(play=tones[ANSWERER_HZ]) as answerer:
        started = time.monotonic()
        result = await run_caller(answerer.uri_for("1"), record=tmp_path / "h.wav", max_seconds=2)
        elapsed = time.monotonic() - started
    assert result.returncode == 3, result.describe()
    assert result.first("timeout") is not None
    assert elapsed < 8
    # the recording was finalised by the orderly hang-up
    assert_hears(tmp_path / "h.wav", ANSWERER_HZ, (CALLER_HZ,))


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required")
async def test_caller_stopped_by_sigterm_finalises_its_recording(tmp_path: Path, tones: dict[float, Path]) -> None:
    async with await start_answerer(play=tones[ANSWERER_HZ]) as answerer:
        caller = await start_caller(answerer.uri_for("1"), record=tmp_path / "h.wav", max_seconds=30)
        await caller.wait_for("media_active", timeout=10)
        await asyncio.sleep(1.0)
        result = await caller.stop()
    assert result.returncode == 3, result.describe()
    samples, _ = read_wav(tmp_path / "h.wav")
    assert samples.size / RATE == pytest.approx(1.0, abs=0.4)
    assert tone_present(samples, RATE, ANSWERER_HZ)


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required", "sipp_required")
@pytest.mark.parametrize(("password", "status"), [("s3cret", 200), ("wrong", 403)])
async def test_caller_answers_digest_challenge(tmp_path: Path, password: str, status: int) -> None:
    scenario = write_scenario(tmp_path / "uas_digest.xml", uas_digest_scenario(username="trunk7", password="s3cret"))
    port = free_udp_port()
    sipp = asyncio.create_task(
        run_sipp(scenario, "", workdir=tmp_path, uas=True, local_port=port, calls=1, timeout_s=20)
    )
    await asyncio.sleep(0.5)  # sipp binds within a few ms
    options = {"hangup_after": 1} if status == 200 else {"expect_status": status}
    result = await run_caller(f"sip:1001@127.0.0.1:{port}", digest=f"trunk7:{password}", max_seconds=10, **options)
    sipp_result = await sipp
    assert result.ok, result.describe()
    assert result.done[0]["status"] == status
    assert sipp_result.ok, sipp_result.describe()
    invites = [m for m in sipp_result.messages if m.method == "INVITE"]
    assert len(invites) == 2
    assert "Authorization: Digest" in invites[1].text
    assert 'username="trunk7"' in invites[1].text


# --------------------------------------------------------------------- sipp + RtpSink <-> answerer


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required", "sipp_required")
async def test_sipp_calls_with_rtp_sinks_hear_the_answerer(tmp_path: Path, tones: dict[float, Path]) -> None:
    hold_s = 3.0
    sinks = [await RtpSink.open() for _ in range(2)]
    try:
        for sink in sinks:
            sink.start_sending(tone(CALLER_HZ, 1.0))  # symmetric RTP back to the answerer
        async with await start_answerer(play=tones[ANSWERER_HZ], record=tmp_path / "ans.wav", max_calls=2) as answerer:
            result = await sipp_calls(
                f"127.0.0.1:{answerer.sip_port}",
                workdir=tmp_path / "sipp",
                rtp_ports=[s.port for s in sinks],
                callee=["1001", "1002"],
                hold_s=hold_s,
                headers=["X-Client-Id: 7"],
            )
            ans = await answerer.wait(15)
    finally:
        for sink in sinks:
            sink.close()
    assert result.ok, result.describe()
    assert result.successful_calls == 2
    assert result.failed_calls == 0

    # call length measured by sipp (rtd, ms) and from its message trace (us) agree with the pause
    assert len(result.call_lengths_s) == 2
    for seconds in result.call_lengths_s:
        assert seconds == pytest.approx(hold_s, abs=0.15)
    by_call = result.call_lengths_by_call_id
    assert len(by_call) == 2
    for seconds in by_call.values():
        assert seconds == pytest.approx(hold_s, abs=0.15)
    assert sorted(by_call.values()) == pytest.approx(sorted(result.call_lengths_s), abs=0.01)
    print(f"sipp call lengths rtd={result.call_lengths_s} trace={sorted(by_call.values())}")

    assert sorted(ev["to"] for ev in ans.of("incoming")) == ["<sip:1001@127.0.0.1>", "<sip:1002@127.0.0.1>"]
    assert all(ev["headers"]["X-Client-Id"] == "7" for ev in ans.of("incoming"))
    for sink in sinks:
        assert sink.payload_type == 0
        assert sink.packet_count == pytest.approx(hold_s / 0.020, rel=0.1)
        heard = sink.samples()
        assert heard.size / RATE == pytest.approx(hold_s, abs=0.2)
        for w in segments(heard[1600:], RATE, 0.5):
            assert tone_present(w, RATE, ANSWERER_HZ)
            assert not tone_present(w, RATE, CALLER_HZ)
        assert sink.sent > 0
    for path in (tmp_path / "ans.wav", tmp_path / "ans-1.wav"):
        assert_hears(path, CALLER_HZ, (ANSWERER_HZ,), skip_s=0.3)


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required", "sipp_required")
async def test_sipp_waits_for_remote_bye(tmp_path: Path, tones: dict[float, Path]) -> None:
    async with (
        await RtpSink.open() as sink,
        await start_answerer(play=tones[ANSWERER_HZ], hangup_after=2.0) as answerer,
    ):
        result = await sipp_calls(
            f"127.0.0.1:{answerer.sip_port}",
            workdir=tmp_path,
            rtp_ports=[sink.port],
            hangup="remote",
            timeout_s=15,
        )
    assert result.ok, result.describe()
    assert result.call_lengths_s == [pytest.approx(2.0, abs=0.2)]
    assert tone_present(sink.samples(), RATE, ANSWERER_HZ)


@pytest.mark.peers
@pytest.mark.usefixtures("pjsua2_required", "sipp_required")
@pytest.mark.parametrize("status", [404, 403, 480, 503])
async def test_sipp_rejection_scenarios(tmp_path: Path, status: int) -> None:
    async with await start_answerer(reject=status) as answerer:
        target = f"127.0.0.1:{answerer.sip_port}"
        good = await sipp_calls(target, workdir=tmp_path / "good", rtp_ports=[free_port_range(2)], expect_status=status)
        other = 404 if status != 404 else 503
        bad = await sipp_calls(target, workdir=tmp_path / "bad", rtp_ports=[free_port_range(2)], expect_status=other)
    assert good.ok, good.describe()
    assert good.final_statuses() == [status]
    assert bad.returncode == 1, bad.describe()
    assert bad.failed_calls == 1
    assert bad.final_statuses() == [status]


@pytest.mark.peers
@pytest.mark.usefixtures("sipp_required")
async def test_sipp_timeout_bounds_a_run_against_nobody(tmp_path: Path) -> None:
    """Nothing listens on the target: the run ends by -timeout, as a failure, quickly."""
    silent = free_udp_port()
    started = time.monotonic()
    result = await sipp_calls(f"127.0.0.1:{silent}", workdir=tmp_path, rtp_ports=[40000], timeout_s=3)
    assert not result.ok
    assert time.monotonic() - started < 12


def test_uac_scenario_shapes() -> None:
    ok = uac_scenario(hold_s=2.5, headers=["X-A: 1"])
    assert '<pause milliseconds="2500"/>' in ok
    assert "m=audio [field0] RTP/AVP 0 8" in ok
    assert 'start_rtd="call"' in ok
    assert 'rtd="call"' in ok
    assert "\n      X-A: 1\n" in ok
    no_headers = uac_scenario()
    invite = no_headers.split("INVITE sip:", 1)[1].split("Content-Length", 1)[0]
    assert "\n\n" not in invite
    assert "\n      \n" not in invite
    rejected = uac_scenario(expect_status=480)
    assert '<recv response="480"' in rejected
    assert "BYE" not in rejected
    remote = uac_scenario(hangup="remote")
    assert '<recv request="BYE"' in remote
    assert "<pause" not in remote


# --------------------------------------------------------------------- RTP parsing (no peers needed)


def test_parse_rtp_header_fields() -> None:
    pkt = build_rtp(8, 65535, 4000, 0xDEADBEEF, b"\xd5" * 160, marker=True)
    p = parse_rtp(pkt)
    assert p is not None
    assert (p.version, p.payload_type, p.seq, p.timestamp, p.ssrc, p.marker) == (
        2,
        8,
        65535,
        4000,
        0xDEADBEEF,
        True,
    )
    assert p.payload == b"\xd5" * 160
    # CSRCs, a header extension and padding are skipped over
    raw = bytearray(struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0, 1, 2, 3))
    raw += struct.pack("!II", 11, 12) + struct.pack("!HH", 0xBEDE, 1) + b"\0\0\0\0" + b"\x01\x02" + b"\0\0\x03"
    q = parse_rtp(bytes(raw))
    assert q is not None
    assert q.csrcs == (11, 12)
    assert q.payload == b"\x01\x02"
    assert parse_rtp(b"\x00" * 20) is None  # version 0
    assert parse_rtp(struct.pack("!BBHI", 0x80, 200, 1, 2)) is None  # RTCP SR / too short


def test_decode_orders_by_seq_across_wrap_and_pads_losses() -> None:
    x = tone(CALLER_HZ, 0.2)  # 10 frames
    enc = ulaw_encode(x)
    frames = [enc[i * 160 : (i + 1) * 160] for i in range(10)]
    pkts = [parse_rtp(build_rtp(0, (65530 + i) & 0xFFFF, 1000 + 160 * i, 5, frames[i])) for i in range(10)]
    assert all(p is not None for p in pkts)
    got = [p for p in pkts if p is not None]
    shuffled = [*got[:3], got[4], got[3], *got[5:7], *got[8:]]  # reordered, frame 7 lost
    y = decode_packets(shuffled)
    assert y.size == x.size
    assert np.allclose(y[: 7 * 160], x[: 7 * 160], atol=0.02)
    assert not y[7 * 160 : 8 * 160].any()  # the lost frame is silence of the right length
    assert rms_dbfs(y[8 * 160 :]) == pytest.approx(rms_dbfs(x[8 * 160 :]), abs=0.5)


async def test_rtp_sink_receives_and_answers_symmetrically() -> None:
    sink = await RtpSink.open()
    peer = await RtpSink.open()
    try:
        peer.start_sending(tone(ANSWERER_HZ, 1.0), remote=("127.0.0.1", sink.port))
        sink.start_sending(tone(CALLER_HZ, 1.0))  # waits for the first packet, answers its source
        await sink.wait_for_packets(25, timeout=5)
        await peer.wait_for_packets(20, timeout=5)
    finally:
        sink.close()
        peer.close()
    assert sink.payload_types == {0}
    assert len(sink.ssrcs) == 1
    assert tone_present(sink.samples(), RATE, ANSWERER_HZ)
    assert tone_present(peer.samples(), RATE, CALLER_HZ)
    assert not tone_present(peer.samples(), RATE, ANSWERER_HZ)


# --------------------------------------------------------------------- missing peers: skip locally, FAIL under CI


def test_missing_pjsua2_fails_under_ci_and_skips_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from peers import require

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="pjsua2"):
        require.require_pjsua2()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="pjsua2"):
        require.require_pjsua2()
    monkeypatch.setattr(require.shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="sipp"):
        require.require_sipp()
