"""Shared plumbing of the pjsua2 test peers (pjsua_caller.py, pjsua_answerer.py).

Each peer is its own process with exactly one pjsua2 Endpoint in poll mode:
every pj object is created, used and destroyed by the main thread, inside or
between ``ep.libHandleEvents()`` calls. Nothing here is imported by the bridge.

Events go to stdout as one JSON object per line (``emit``); pjsua's own log goes
to ``--log-file`` (or nowhere), never to stdout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pjsua2 as pj  # noqa: TID251 - test peers are pjsua2 programs of their own

LOOPBACK = "127.0.0.1"
MAX_CALLS_PER_PROCESS = 4  # measured: a 5th concurrent call fails in one pjsua2 process


def emit(event: str, **fields: Any) -> None:
    """Print one event as a JSON line (``t``: monotonic seconds, ``wall``: epoch seconds)."""
    record: dict[str, Any] = {"event": event, **fields, "t": time.monotonic(), "wall": time.time()}
    sys.stdout.write(json.dumps(record, sort_keys=False) + "\n")
    sys.stdout.flush()


@contextmanager
def stdout_silenced() -> Iterator[None]:
    """Point fd 1 at /dev/null (libCreate prints before the log config applies)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class StopFlag:
    """Set by SIGTERM/SIGINT; the poll loop checks it and winds down cleanly (WAV headers get finalised)."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name


@dataclass
class PjRuntime:
    """The Endpoint and its UDP transport; ``objects`` holds every pj object to drop before libDestroy."""

    ep: pj.Endpoint
    sip_port: int
    objects: list[Any] = field(default_factory=list)

    def poll(self, ms: int = 10) -> None:
        self.ep.libHandleEvents(ms)

    def shutdown(self) -> None:
        self.ep.audDevManager().setNoDev()
        self.objects.clear()
        # NO_NETWORK: every call has ended by now; skips the 1 s grace sleep pjsua_destroy2 does
        self.ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)


def start_endpoint(
    *, local_port: int, log_file: str | None, codecs: list[str], log_level: int = 5, local_ip: str = LOOPBACK
) -> PjRuntime:
    """Create the poll-mode Endpoint on 8 kHz with a null sound device and a loopback UDP transport."""
    ep = pj.Endpoint()
    with stdout_silenced():
        ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "hotline-bridge-test-peer"
    cfg.logConfig.consoleLevel = 0
    cfg.logConfig.level = log_level if log_file else 0
    cfg.logConfig.msgLogging = bool(log_file)
    if log_file:
        cfg.logConfig.filename = log_file
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.noVad = True
    cfg.medConfig.sndAutoCloseTime = -1
    cfg.medConfig.ecTailLen = 0
    with stdout_silenced():
        ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    tcfg = pj.TransportConfig()
    tcfg.port = local_port
    tcfg.boundAddress = local_ip
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    port = int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
    ep.libStart()
    set_codecs(ep, codecs)
    return PjRuntime(ep=ep, sip_port=port)


def set_codecs(ep: pj.Endpoint, codecs: list[str]) -> None:
    """Enable exactly ``codecs`` (prefixes such as "PCMU" or "G722/16000"), in that order of preference."""
    available = [c.codecId for c in ep.codecEnum2()]
    wanted: list[str] = []
    for name in codecs:
        matches = [cid for cid in available if cid.lower().startswith(name.lower())]
        if not matches:
            raise SystemExit(f"codec {name!r} not available; have {available}")
        wanted.extend(m for m in matches if m not in wanted)
    for cid in available:
        ep.codecSetPriority(cid, 0)
    for rank, cid in enumerate(wanted):
        ep.codecSetPriority(cid, 250 - rank)


def account_config(
    *, user: str, sip_port: int, digest: str | None = None, local_ip: str = LOOPBACK
) -> pj.AccountConfig:
    """A registration-less account whose media binds to loopback (RTP ports chosen at random)."""
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{user}@{local_ip}:{sip_port}"
    mtc = acfg.mediaConfig.transportConfig
    mtc.boundAddress = local_ip
    mtc.port = 0
    mtc.randomizePort = True
    if digest:
        username, _, password = digest.partition(":")
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", username, 0, password))
    return acfg


def sip_headers(pairs: list[str]) -> pj.SipHeaderVector:
    """``["X-Client: 7", ...]`` -> a SipHeaderVector for ``CallOpParam.txOption.headers``."""
    vector = pj.SipHeaderVector()
    for raw in pairs:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"bad --header {raw!r}: expected 'Name: value'")
        header = pj.SipHeader()
        header.hName = name.strip()
        header.hValue = value.strip()
        vector.append(header)
    return vector


def create_player(runtime: PjRuntime, path: str, *, loop: bool = True) -> pj.AudioMediaPlayer:
    player = pj.AudioMediaPlayer()
    player.createPlayer(str(Path(path).resolve()), 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
    runtime.objects.append(player)
    return player


def create_recorder(path: Path) -> pj.AudioMediaRecorder:
    """A recorder on the 8 kHz bridge: 8 kHz mono 16-bit PCM WAV (finalised when the object is dropped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    recorder = pj.AudioMediaRecorder()
    recorder.createRecorder(str(path.resolve()))
    return recorder


def record_path_for(record: str | None, index: int, count: int) -> Path | None:
    """``heard.wav`` for a single call; ``heard-0.wav``, ``heard-1.wav``, ... when there are several."""
    if not record:
        return None
    base = Path(record)
    if count == 1:
        return base
    return base.with_name(f"{base.stem}-{index}{base.suffix or '.wav'}")


def active_audio(call: pj.Call) -> pj.AudioMedia | None:
    """The call's audio media once PJSUA_CALL_MEDIA_ACTIVE, else None."""
    info = call.getInfo()
    for mi in info.media:
        if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            return call.getAudioMedia(mi.index)
    return None


def state_name(state: int) -> str:
    names = {
        pj.PJSIP_INV_STATE_NULL: "NULL",
        pj.PJSIP_INV_STATE_CALLING: "CALLING",
        pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
        pj.PJSIP_INV_STATE_EARLY: "EARLY",
        pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
        pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
        pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
    }
    return names.get(state, str(state))
