#!/usr/bin/env python
"""A pjsua2 test ANSWERER, run as its own process: the far end for peer self-tests.

    .venv/bin/python tests/peers/pjsua_answerer.py --local-port 0 --play tone1000.wav \\
        --record heard.wav [--reject 404] [--hangup-after 5] [--max-calls 1]

Answers every incoming call (or rejects it with ``--reject CODE``), plays
``--play`` into it in a loop and records what it hears: the first call to
``--record``, later ones to ``STEM-1.wav``, ``STEM-2.wav``, ... (8 kHz mono 16-bit).
At most 4 calls at once (one pjsua2 process limit); more get 486.

JSON lines on stdout, like pjsua_caller.py:

    {"event": "ready", "sip_port": 40123, ...}     <- dial sip:anything@127.0.0.1:40123
    {"event": "incoming", "call": 0, "from": "...", "to": "...", "headers": {"X-Client": "7"}, ...}
    {"event": "state", "call": 0, "state": "CONFIRMED", "status": 200, ...}
    {"event": "media_active", "call": 0, "record": "heard.wav", ...}
    {"event": "done", "call": 0, "status": 200, "connected_s": 6.0, "hungup_by": "remote", ...}
    {"event": "exit", "code": 0, ...}

Runs until ``--max-calls`` calls have ended, ``--max-seconds`` pass (default 120)
or SIGTERM; exit code 0 unless setup failed.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pj_common as pc
import pjsua2 as pj  # noqa: TID251 - test peers are pjsua2 programs of their own

HEADER_RE = re.compile(r"^(X-[A-Za-z0-9-]+|Subject|User-Agent)\s*:\s*(.*)$", re.MULTILINE | re.IGNORECASE)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--local-port", type=int, default=0, help="SIP UDP port on 127.0.0.1 (0 = any)")
    p.add_argument("--play", help="WAV played into each call, looped")
    p.add_argument("--record", help="WAV of what is heard (call i > 0: STEM-<i>.wav)")
    p.add_argument("--reject", type=int, help="answer every INVITE with this final status instead of 200")
    p.add_argument("--ring-seconds", type=float, default=0.0, help="send 180 and wait this long before answering")
    p.add_argument("--hangup-after", type=float, help="hang up this many seconds after CONFIRMED")
    p.add_argument("--max-calls", type=int, help="exit after this many calls have ended")
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--user", default="answerer")
    p.add_argument("--codecs", default="PCMU,PCMA")
    p.add_argument("--log-file")
    args = p.parse_args(argv)
    if args.play and not Path(args.play).is_file():
        p.error(f"--play {args.play}: no such file")
    return args


@dataclass
class Incoming:
    index: int
    record_path: Path | None
    call: AnswerCall | None = None
    recorder: Any = None
    arrived_at: float = 0.0
    answered: bool = False
    confirmed_at: float | None = None
    disconnected_at: float | None = None
    status: int | None = None
    hangup_sent_at: float | None = None
    media_seen: bool = False
    finished: bool = False
    reported: bool = False


class AnswerCall(pj.Call):  # type: ignore[misc]
    def __init__(self, acc: pj.Account, call_id: int, slot: Incoming, answerer: Answerer) -> None:
        super().__init__(acc, call_id)
        self.slot = slot
        self.answerer = answerer

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        slot = self.slot
        pc.emit(
            "state",
            call=slot.index,
            state=pc.state_name(info.state),
            status=info.lastStatusCode,
            reason=info.lastReason,
        )
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and slot.confirmed_at is None:
            slot.confirmed_at = time.monotonic()
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            slot.disconnected_at = time.monotonic()
            slot.status = info.lastStatusCode
            slot.finished = True
            slot.call = None

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        audio = pc.active_audio(self)
        if audio is not None:
            self.answerer.connect_media(self.slot, audio)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        pc.emit("dtmf", call=self.slot.index, digit=prm.digit)


class AnswerAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, answerer: Answerer) -> None:
        super().__init__()
        self.answerer = answerer

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.answerer.incoming(self, prm)


class Answerer:
    def __init__(self, args: argparse.Namespace, runtime: pc.PjRuntime) -> None:
        self.args = args
        self.rt = runtime
        self.player = pc.create_player(runtime, args.play) if args.play else None
        self.slots: list[Incoming] = []
        self.account = AnswerAccount(self)
        self.account.create(pc.account_config(user=args.user, sip_port=runtime.sip_port))

    def live(self) -> int:
        return sum(1 for s in self.slots if not s.finished)

    def incoming(self, acc: pj.Account, prm: pj.OnIncomingCallParam) -> None:
        index = len(self.slots)
        record = None
        if self.args.record:
            base = Path(self.args.record)
            record = base if index == 0 else base.with_name(f"{base.stem}-{index}{base.suffix or '.wav'}")
        slot = Incoming(index=index, record_path=record, arrived_at=time.monotonic())
        busy = self.live() >= pc.MAX_CALLS_PER_PROCESS
        self.slots.append(slot)
        call = AnswerCall(acc, prm.callId, slot, self)
        slot.call = call
        info = call.getInfo()
        headers = {m.group(1): m.group(2).strip() for m in HEADER_RE.finditer(prm.rdata.wholeMsg)}
        pc.emit("incoming", call=index, **{"from": info.remoteUri, "to": info.localUri}, headers=headers)
        op = pj.CallOpParam(True)
        if busy or self.args.reject:
            op.statusCode = 486 if busy else self.args.reject
            call.hangup(op)
            return
        if self.args.ring_seconds > 0:
            op.statusCode = 180
            call.answer(op)
        else:
            self.answer(slot)

    def answer(self, slot: Incoming) -> None:
        if slot.call is None or slot.answered:
            return
        slot.answered = True
        op = pj.CallOpParam(True)
        op.statusCode = 200
        slot.call.answer(op)

    def connect_media(self, slot: Incoming, audio: pj.AudioMedia) -> None:
        if self.player is not None:
            self.player.startTransmit(audio)
        if slot.record_path is not None and slot.recorder is None:
            slot.recorder = pc.create_recorder(slot.record_path)
        if slot.recorder is not None:
            audio.startTransmit(slot.recorder)
        if not slot.media_seen:
            slot.media_seen = True
            pc.emit("media_active", call=slot.index, record=str(slot.record_path or ""))

    def tick(self, now: float) -> None:
        for slot in self.slots:
            if (
                slot.call is not None
                and not slot.answered
                and not self.args.reject
                and now - slot.arrived_at >= self.args.ring_seconds
            ):
                self.answer(slot)
            if (
                slot.call is not None
                and slot.confirmed_at is not None
                and self.args.hangup_after is not None
                and slot.hangup_sent_at is None
                and now - slot.confirmed_at >= self.args.hangup_after
            ):
                slot.hangup_sent_at = now
                pc.emit("hangup", call=slot.index, after_s=now - slot.confirmed_at)
                slot.call.hangup(pj.CallOpParam(True))
            if slot.finished:
                slot.recorder = None
                if not slot.reported:
                    slot.reported = True
                    self.report(slot)

    def report(self, slot: Incoming) -> None:
        connected = None
        if slot.confirmed_at is not None and slot.disconnected_at is not None:
            connected = slot.disconnected_at - slot.confirmed_at
        by = None
        if slot.confirmed_at is not None:
            by = "local" if slot.hangup_sent_at is not None else "remote"
        pc.emit(
            "done",
            call=slot.index,
            status=slot.status,
            connected_s=connected,
            hungup_by=by,
            record=str(slot.record_path or ""),
        )

    def ended(self) -> int:
        return sum(1 for s in self.slots if s.reported)

    def hangup_all(self) -> None:
        for slot in self.slots:
            if slot.call is not None and slot.hangup_sent_at is None:
                slot.hangup_sent_at = time.monotonic()
                slot.call.hangup(pj.CallOpParam(True))

    def release(self) -> None:
        for slot in self.slots:
            slot.recorder = None
            slot.call = None
        self.player = None
        self.account.shutdown()
        self.account = None


def run(args: argparse.Namespace) -> int:
    stop = pc.StopFlag()
    runtime = pc.start_endpoint(local_port=args.local_port, log_file=args.log_file, codecs=args.codecs.split(","))
    answerer = Answerer(args, runtime)
    pc.emit("ready", sip_port=runtime.sip_port, uri=f"sip:{args.user}@{pc.LOOPBACK}:{runtime.sip_port}")
    started = time.monotonic()
    grace_until: float | None = None
    while True:
        runtime.poll(10)
        now = time.monotonic()
        answerer.tick(now)
        if args.max_calls is not None and answerer.ended() >= args.max_calls:
            break
        if grace_until is None and (stop.requested or now - started > args.max_seconds):
            pc.emit("stopping", signal=stop.signal_name or None, after_s=now - started)
            answerer.hangup_all()
            grace_until = now + 3.0
        if grace_until is not None and (answerer.live() == 0 or now > grace_until):
            break
    answerer.tick(time.monotonic())
    answerer.release()
    runtime.shutdown()
    pc.emit("exit", code=0)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except pj.Error as exc:
        pc.emit("error", message=f"{exc.title}: {exc.reason} ({exc.status})")
        return 2


if __name__ == "__main__":
    sys.exit(main())
