#!/usr/bin/env python
"""A pjsua2 test CALLER, run as its own process.

    .venv/bin/python tests/peers/pjsua_caller.py --dial sip:1001@127.0.0.1:5070 \\
        --play tone440.wav --record heard.wav --hangup-after 6

It dials, plays ``--play`` into the call in a loop, records everything it hears
(8 kHz mono 16-bit WAV, from the moment media is active until the call ends)
and prints one JSON object per line on stdout:

    {"event": "ready", "sip_port": 40123, "calls": 1, ...}
    {"event": "state", "call": 0, "state": "EARLY", "status": 180, "reason": "Ringing", ...}
    {"event": "state", "call": 0, "state": "CONFIRMED", "status": 200, ...}
    {"event": "media_active", "call": 0, "record": "heard.wav", ...}
    {"event": "dtmf", "call": 0, "digit": "1", ...}
    {"event": "hangup", "call": 0, "after_s": 6.0, ...}
    {"event": "state", "call": 0, "state": "DISCONNECTED", "status": 200, ...}
    {"event": "done", "call": 0, "ok": true, "status": 200, "last_status": 200,
     "reason": "Normal call clearing", "connected_s": 6.01, "hungup_by": "local", ...}
    {"event": "exit", "code": 0, ...}

Every event has ``t`` (time.monotonic(), comparable with the parent's clock on
the same machine) and ``wall`` (epoch seconds).

``status`` of ``done`` is the final response to the INVITE (200, or 404 for a
rejected call, ...); ``last_status`` is pjsua's lastStatusCode when the call
ended. Exit codes: 0 the call(s) went as expected, 1 not as expected,
2 usage/setup error, 3 ``--max-seconds`` ran out (or SIGTERM) first.

"As expected" is: with ``--expect-status CODE``, the INVITE's final status is
CODE; otherwise the call was answered (CONFIRMED) and then, with
``--hangup-after``, lasted until this caller hung up, or without it, was hung
up by the remote side.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pj_common as pc
import pjsua2 as pj  # noqa: TID251 - test peers are pjsua2 programs of their own

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
DISCONNECT_GRACE_S = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dial", required=True, help="SIP URI to call, e.g. sip:1001@127.0.0.1:5070")
    p.add_argument("--play", help="WAV played into the call, looped")
    p.add_argument("--record", help="WAV of what is heard (several calls: STEM-<i>.wav)")
    p.add_argument("--hangup-after", type=float, help="seconds after CONFIRMED at which this side hangs up")
    p.add_argument("--max-seconds", type=float, default=60.0, help="bound on the whole run (default 60)")
    p.add_argument("--expect-status", type=int, help="final INVITE status that counts as success (e.g. 404)")
    p.add_argument("--header", action="append", default=[], help="extra INVITE header 'Name: value'")
    p.add_argument("--from-user", default="caller", help="user part of From (default 'caller')")
    p.add_argument("--local-port", type=int, default=0, help="SIP UDP port (0 = any)")
    p.add_argument("--local-ip", default=pc.LOOPBACK, help="loopback address to call from (default 127.0.0.1)")
    p.add_argument("--calls", type=int, default=1, help=f"simultaneous calls, 1..{pc.MAX_CALLS_PER_PROCESS}")
    p.add_argument("--digest", help="USER:PASSWORD answering 401/407 challenges (any realm)")
    p.add_argument("--codecs", default="PCMU,PCMA", help="codecs offered, in order (default PCMU,PCMA)")
    p.add_argument("--dtmf", help="RFC 4733 digits sent once, --dtmf-after seconds after CONFIRMED")
    p.add_argument("--dtmf-after", type=float, default=1.0)
    p.add_argument("--log-file", help="pjsua log (level 5, SIP messages included)")
    args = p.parse_args(argv)
    if not 1 <= args.calls <= pc.MAX_CALLS_PER_PROCESS:
        p.error(f"--calls must be 1..{pc.MAX_CALLS_PER_PROCESS}")
    if args.play and not Path(args.play).is_file():
        p.error(f"--play {args.play}: no such file")
    return args


@dataclass
class Slot:
    """One outgoing call and everything observed about it."""

    index: int
    record_path: Path | None
    call: TestCall | None = None
    recorder: Any = None
    confirmed_at: float | None = None
    disconnected_at: float | None = None
    invite_status: int | None = None
    last_status: int | None = None
    last_reason: str = ""
    hangup_sent_at: float | None = None
    dtmf_sent: bool = False
    media_seen: bool = False
    finished: bool = False

    @property
    def connected_s(self) -> float | None:
        if self.confirmed_at is None:
            return None
        return (self.disconnected_at or time.monotonic()) - self.confirmed_at


class TestCall(pj.Call):  # type: ignore[misc]
    """Forwards pjsua callbacks (main thread, inside libHandleEvents) to its Slot."""

    def __init__(self, acc: pj.Account, slot: Slot, caller: Caller) -> None:
        super().__init__(acc)
        self.slot = slot
        self.caller = caller

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        slot = self.slot
        name = pc.state_name(info.state)
        pc.emit("state", call=slot.index, state=name, status=info.lastStatusCode, reason=info.lastReason)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and slot.confirmed_at is None:
            slot.confirmed_at = time.monotonic()
            slot.invite_status = info.lastStatusCode
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            slot.disconnected_at = time.monotonic()
            slot.last_status = info.lastStatusCode
            slot.last_reason = info.lastReason
            if slot.invite_status is None:
                slot.invite_status = info.lastStatusCode
            slot.finished = True
            slot.call = None  # drop our reference: pjsua is done with this call

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        audio = pc.active_audio(self)
        if audio is not None:
            self.caller.connect_media(self.slot, audio)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        pc.emit("dtmf", call=self.slot.index, digit=prm.digit)


class Caller:
    def __init__(self, args: argparse.Namespace, runtime: pc.PjRuntime) -> None:
        self.args = args
        self.rt = runtime
        self.player = pc.create_player(runtime, args.play) if args.play else None
        self.account = pj.Account()
        self.account.create(
            pc.account_config(
                user=args.from_user, sip_port=runtime.sip_port, digest=args.digest, local_ip=args.local_ip
            )
        )
        self.slots = [Slot(i, pc.record_path_for(args.record, i, args.calls)) for i in range(args.calls)]

    def dial_all(self) -> None:
        for slot in self.slots:
            call = TestCall(self.account, slot, self)
            slot.call = call
            prm = pj.CallOpParam(True)
            prm.opt.audioCount = 1
            prm.opt.videoCount = 0
            if self.args.header:
                prm.txOption.headers = pc.sip_headers(self.args.header)
            call.makeCall(self.args.dial, prm)

    def connect_media(self, slot: Slot, audio: pj.AudioMedia) -> None:
        if self.player is not None:
            self.player.startTransmit(audio)
        if slot.record_path is not None and slot.recorder is None:
            slot.recorder = pc.create_recorder(slot.record_path)
        if slot.recorder is not None:
            audio.startTransmit(slot.recorder)
        if not slot.media_seen:
            slot.media_seen = True
            pc.emit("media_active", call=slot.index, record=str(slot.record_path or ""))

    def hangup(self, slot: Slot, why: str) -> None:
        if slot.call is None or slot.hangup_sent_at is not None:
            return
        slot.hangup_sent_at = time.monotonic()
        pc.emit("hangup", call=slot.index, why=why, after_s=slot.connected_s)
        slot.call.hangup(pj.CallOpParam(True))

    def tick(self, now: float) -> None:
        """Timed actions: DTMF, --hangup-after; release recorders of ended calls."""
        a = self.args
        for slot in self.slots:
            if slot.call is not None and slot.confirmed_at is not None:
                up = now - slot.confirmed_at
                if a.dtmf and not slot.dtmf_sent and up >= a.dtmf_after:
                    slot.dtmf_sent = True
                    slot.call.dialDtmf(a.dtmf)
                    pc.emit("dtmf_sent", call=slot.index, digits=a.dtmf)
                if a.hangup_after is not None and up >= a.hangup_after:
                    self.hangup(slot, "hangup-after")
            if slot.finished and slot.recorder is not None:
                slot.recorder = None  # closes the WAV (header sizes written)

    def all_finished(self) -> bool:
        return all(s.finished for s in self.slots)

    def verdict(self, slot: Slot) -> bool:
        a = self.args
        if a.expect_status is not None:
            return slot.invite_status == a.expect_status
        if slot.confirmed_at is None or not slot.finished:
            return False
        if a.hangup_after is not None:
            return slot.hangup_sent_at is not None and slot.hangup_sent_at <= (slot.disconnected_at or 0.0)
        return slot.hangup_sent_at is None

    def report(self, slot: Slot, ok: bool) -> None:
        if slot.hangup_sent_at is not None and (
            slot.disconnected_at is None or slot.hangup_sent_at <= slot.disconnected_at
        ):
            by = "local"
        elif slot.disconnected_at is not None and slot.confirmed_at is not None:
            by = "remote"
        else:
            by = None
        pc.emit(
            "done",
            call=slot.index,
            ok=ok,
            status=slot.invite_status,
            last_status=slot.last_status,
            reason=slot.last_reason,
            connected_s=slot.connected_s,
            hungup_by=by,
            record=str(slot.record_path or ""),
        )

    def release(self) -> None:
        for slot in self.slots:
            slot.recorder = None
            slot.call = None
        self.player = None
        self.account.shutdown()
        self.account = None


def run(args: argparse.Namespace) -> int:
    stop = pc.StopFlag()
    runtime = pc.start_endpoint(
        local_port=args.local_port, log_file=args.log_file, codecs=args.codecs.split(","), local_ip=args.local_ip
    )
    caller = Caller(args, runtime)
    pc.emit("ready", sip_port=runtime.sip_port, calls=args.calls, dial=args.dial)
    started = time.monotonic()
    timed_out = False
    caller.dial_all()
    grace_until: float | None = None
    while not caller.all_finished():
        runtime.poll(10)
        now = time.monotonic()
        caller.tick(now)
        if grace_until is None and (stop.requested or now - started > args.max_seconds):
            timed_out = True
            pc.emit("timeout", signal=stop.signal_name or None, after_s=now - started)
            for slot in caller.slots:
                caller.hangup(slot, "max-seconds" if not stop.requested else stop.signal_name)
            grace_until = now + DISCONNECT_GRACE_S
        if grace_until is not None and now > grace_until:
            break
    caller.tick(time.monotonic())
    verdicts = [caller.verdict(s) for s in caller.slots]
    for slot, ok in zip(caller.slots, verdicts, strict=True):
        caller.report(slot, ok)
    code = EXIT_TIMEOUT if timed_out else (EXIT_OK if all(verdicts) else EXIT_UNEXPECTED)
    caller.release()
    runtime.shutdown()
    pc.emit("exit", code=code)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except pj.Error as exc:
        pc.emit("error", message=f"{exc.title}: {exc.reason} ({exc.status})")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
