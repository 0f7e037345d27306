"""A stand-in for the control process, for the softphone's browser tests.

It implements the server side of docs/agent-protocol.md with canned behaviour:
one agent (alice / alice-demo), a small state machine, offers sent on demand,
and a real media leg: each `rtc_offer` is answered by an in-process aiortc peer
that sends silence while the call is held or ringing and a 440 Hz tone once it
is answered, and keeps what it hears from the browser.

Tests drive it directly (`await bridge.send_offer()`), and read
`bridge.received` for what the page sent. Run it by hand to try the pages:

    .venv/bin/python tests/browser/fake_bridge.py --port 8099
    curl -X POST localhost:8099/_fake/offer      # ring the agent
    curl -X POST localhost:8099/_fake/cancel     # the caller hangs up while ringing
    curl -X POST localhost:8099/_fake/hangup     # the caller hangs up during the call
    curl -X POST 'localhost:8099/_fake/shift?on=0'
    curl -X POST localhost:8099/_fake/drop       # close every agent WebSocket

Whoever runs it must make aioice gather loopback candidates (see
`loopback_ice`); on hosts without another interface it finds none.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioice.ice
import av
import numpy as np
from aiohttp import WSMsgType, web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

STATIC_DIR = Path(__file__).resolve().parents[2] / "agent_client" / "static"
COOKIE = "hotline_session"
PROTOCOL_VERSION = 1

AGENT = {"login": "alice", "name": "Alice Martin", "role": "agent"}
PASSWORD = "alice-demo"
ACME = {"id": "acme", "name": "Acme Furniture", "kb_url": "https://kb.example.com/acme"}
GLOBEX = {"id": "globex", "name": "Globex Insurance", "kb_url": "https://kb.example.com/globex"}

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz
TONE_HZ = 440.0
DTMF = re.compile(r"^[0-9*#A-D]{1,32}$")
REQUIRED = {
    "set_state": ("state",),
    "rtc_offer": ("call_id", "sdp"),
    "answer": ("call_id",),
    "decline": ("call_id",),
    "hangup": ("call_id",),
    "hold": ("call_id", "on"),
    "mute": ("call_id", "on"),
    "dtmf": ("call_id", "digits"),
    "ping": ("t",),
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def loopback_ice() -> Iterator[None]:
    """Make aioice gather 127.0.0.1, which it skips by default."""
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


class ToneTrack(MediaStreamTrack):
    """The caller's side of the leg: silence until `playing`, then a 440 Hz tone, paced in real time."""

    kind = "audio"

    def __init__(self, freq: float = TONE_HZ) -> None:
        super().__init__()
        self.freq = freq
        self.playing = False
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._pts / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.playing:
            t = (np.arange(FRAME) + self._pts) / RATE
            samples = (0.3 * 32767 * np.sin(2 * np.pi * self.freq * t)).astype(np.int16)
        else:
            samples = np.zeros(FRAME, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


class AgentLeg:
    """One browser media leg, answered by aiortc with PCMU forced."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tone = ToneTrack()
        self.heard: list[tuple[float, np.ndarray]] = []
        self._reader: asyncio.Task[None] | None = None

    async def answer(self, offer_sdp: str) -> str:
        transceiver = self.pc.addTransceiver("audio", direction="sendrecv")
        codecs = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() == "audio/pcmu"])
        transceiver.sender.replaceTrack(self.tone)
        self.pc.on("track", self._on_track)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                samples = frame.to_ndarray().reshape(-1).astype(np.float64) / 32768.0
                self.heard.append((time.monotonic(), samples))

    def audio_since(self, since: float) -> tuple[np.ndarray, int]:
        """What the browser sent after `since` (time.monotonic()), as mono floats."""
        chunks = [samples for at, samples in self.heard if at >= since]
        return (np.concatenate(chunks) if chunks else np.zeros(0)), RATE

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


@dataclass
class Live:
    """The offer ringing for the agent, and then the call it becomes."""

    call_id: str
    client: dict[str, Any]
    caller: str
    waited_s: float
    queued_at: datetime
    status: str = "ringing"  # ringing, connected, held, ended
    answered_at: datetime | None = None
    muted: bool = False
    dtmf: list[str] = field(default_factory=list)

    def call_message(self, ended_by: str | None = None) -> dict[str, Any]:
        talk = (now() - self.answered_at).total_seconds() if self.answered_at else 0.0
        return {
            "type": "call",
            "call_id": self.call_id,
            "status": self.status,
            "client": self.client,
            "caller": self.caller,
            "answered_at": iso(self.answered_at) if self.answered_at else None,
            "talk_s": round(talk, 1),
            "muted": self.muted,
            "ended_by": ended_by,
        }


class FakeBridge:
    def __init__(self, static_dir: Path = STATIC_DIR, *, on_shift: bool = True, ring_timeout_s: float = 15.0) -> None:
        self.static_dir = static_dir
        self.on_shift = on_shift
        self.ring_timeout_s = ring_timeout_s
        self.sessions: dict[str, str] = {}
        self.sockets: set[web.WebSocketResponse] = set()
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.connections = 0
        self.state = "logged_out"
        self.reason: str | None = None
        self.since = now()
        self.live: Live | None = None
        self.leg: AgentLeg | None = None
        self.legs_opened = 0
        self._ring_timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.app = self._build_app()

    # Canned pay statements: today's and the week's, as /api/pay/statement answers them.
    earnings = {"day": "1.50", "week": "12.40"}

    async def _statement(self, request: web.Request) -> web.Response:
        if request.cookies.get(COOKIE) not in self.sessions:
            return web.json_response({"error": "not signed in"}, status=401)
        key = "day" if request.query.get("from") else "week"
        return web.json_response({"statements": [{"currency": "EUR", "total": self.earnings[key]}]})

    # ------------------------------------------------------------ lifecycle

    def _build_app(self) -> web.Application:
        app = web.Application()
        page = self._page
        app.router.add_get("/", self._root)
        app.router.add_get("/login", page("login.html"))
        app.router.add_get("/agent", page("agent.html"))
        app.router.add_get("/agent/mic-check", page("mic-check.html"))
        app.router.add_static("/static/", self.static_dir)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)
        app.router.add_get("/api/me", self._me)
        app.router.add_get("/ws/agent", self._websocket)
        app.router.add_get("/api/pay/statement", self._statement)
        app.router.add_post("/_fake/offer", self._fake_offer)
        app.router.add_post("/_fake/cancel", self._fake_cancel)
        app.router.add_post("/_fake/hangup", self._fake_hangup)
        app.router.add_post("/_fake/shift", self._fake_shift)
        app.router.add_post("/_fake/drop", self._fake_drop)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._ring_timer:
            self._ring_timer.cancel()
        for ws in list(self.sockets):
            await ws.close()
        if self.leg:
            await self.leg.close()
        if self._runner:
            await self._runner.cleanup()

    # ---------------------------------------------------------------- HTTP

    def _page(self, name: str) -> Any:
        async def handler(request: web.Request) -> web.FileResponse:
            return web.FileResponse(self.static_dir / name)

        return handler

    async def _root(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/agent" if self._session(request) else "/login")

    def _session(self, request: web.Request) -> str | None:
        return self.sessions.get(request.cookies.get(COOKIE, ""))

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("login") != AGENT["login"] or body.get("password") != PASSWORD:
            return web.json_response({"error": "wrong login or password"}, status=401)
        token = secrets.token_urlsafe(24)
        self.sessions[token] = AGENT["login"]
        response = web.json_response(AGENT)
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self.sessions.pop(request.cookies.get(COOKIE, ""), None)
        for ws in list(self.sockets):
            await ws.close()
        response = web.Response(status=204)
        response.del_cookie(COOKIE, path="/")
        return response

    async def _me(self, request: web.Request) -> web.Response:
        if not self._session(request):
            return web.json_response({"error": "not signed in"}, status=401)
        return web.json_response(AGENT)

    # ------------------------------------------------------------ WebSocket

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        if not self._session(request):
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if request.query.get("probe") == "1":
            # As the real bridge does: a probe only answers pings.
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    ping = json.loads(message.data)
                    self.received.append(ping)
                    await ws.send_json({"v": 1, "type": "pong", "t": ping.get("t")})
            return ws
        # As the real bridge does: one socket per agent, the newest wins.
        for older in list(self.sockets):
            self.sockets.discard(older)
            await older.close(code=4001, message=b"signed in elsewhere")
        self.sockets.add(ws)
        self.connections += 1
        if self.state == "logged_out":
            self._set_state("paused", None)
        await self._send(ws, self.hello())
        await self._send(ws, self.state_message())
        await self._send(ws, self.shifts_message())
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_message(ws, message.data)
        finally:
            if ws in self.sockets:
                self.sockets.discard(ws)
                await self._on_socket_closed()
        return ws

    async def _on_socket_closed(self) -> None:
        # Contract: a closed socket while ringing ends the offer at once and
        # pauses the agent; a live call keeps going (grace period).
        if self.live is not None and self.live.status in ("connected", "held"):
            return
        if self.live is not None:
            await self._drop_offer()
        self._set_state("paused", "disconnected")

    async def _send(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        message = {"v": PROTOCOL_VERSION, **message}
        self.sent.append(message)
        if not ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await ws.send_str(json.dumps(message, ensure_ascii=False))

    async def broadcast(self, message: dict[str, Any]) -> None:
        for ws in list(self.sockets):
            await self._send(ws, message)

    async def _error(self, ws: web.WebSocketResponse, code: str, message: str, ref: Any) -> None:
        await self._send(ws, {"type": "error", "code": code, "message": message, "ref": ref})

    async def _on_message(self, ws: web.WebSocketResponse, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            await self._error(ws, "bad_message", "That was not JSON.", None)
            return
        if not isinstance(message, dict):
            await self._error(ws, "bad_message", "Expected a JSON object.", None)
            return
        self.received.append(message)
        self._changed.set()
        kind = message.get("type")
        if message.get("v") != PROTOCOL_VERSION:
            await self._error(ws, "unsupported_version", "This bridge speaks version 1.", kind)
            return
        missing = [name for name in REQUIRED.get(kind, ()) if name not in message]
        handler = getattr(self, f"_on_{kind}", None) if kind in REQUIRED else None
        if handler is None or missing:
            await self._error(ws, "bad_message", f"Unknown type or missing {missing}.", kind)
            return
        await handler(ws, message)

    def _the_call(self, message: dict[str, Any], *statuses: str) -> Live | None:
        live = self.live
        if live is None or live.call_id != message["call_id"] or live.status not in statuses:
            return None
        return live

    async def _on_set_state(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        wanted = message["state"]
        if wanted not in ("available", "paused"):
            await self._error(ws, "bad_message", "state: available or paused.", "set_state")
        elif self.state in ("ringing", "on_call"):
            await self._error(ws, "not_allowed", "Finish the call first.", "set_state")
        elif wanted == "available" and not self.on_shift:
            await self._error(ws, "not_on_shift", self.why_not() or "You are not on shift.", "set_state")
        else:
            self._set_state(wanted, message.get("reason") if wanted == "paused" else None)
            await self.broadcast(self.state_message())

    async def _on_rtc_offer(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        live = self._the_call(message, "ringing", "connected", "held")
        if live is None:
            await self._error(ws, "no_such_call", "No such call.", "rtc_offer")
            return
        # aiortc cannot restart ICE on a leg, so every offer, a restart
        # included, gets a fresh leg here.
        if self.leg is not None:
            await self.leg.close()
        self.leg = AgentLeg()
        self.legs_opened += 1
        self.leg.tone.playing = live.status == "connected"
        sdp = await self.leg.answer(message["sdp"])
        await self._send(ws, {"type": "rtc_answer", "call_id": live.call_id, "sdp": sdp})

    async def _on_answer(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        live = self._the_call(message, "ringing")
        if live is None:
            await self._error(ws, "no_such_call", "That call is no longer ringing.", "answer")
            return
        self._stop_ring_timer()
        live.status = "connected"
        live.answered_at = now()
        if self.leg:
            self.leg.tone.playing = True
        self._set_state("on_call", None)
        await self.broadcast(live.call_message())
        await self.broadcast(self.state_message())

    async def _on_decline(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        if self._the_call(message, "ringing") is None:
            await self._error(ws, "no_such_call", "That call is no longer ringing.", "decline")
            return
        await self.cancel_offer("declined", next_state=("available", None))

    async def _on_hangup(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        if self._the_call(message, "connected", "held") is None:
            await self._error(ws, "no_such_call", "No such call.", "hangup")
            return
        await self._end_call("agent")

    async def _on_hold(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        live = self._the_call(message, "connected", "held")
        if live is None:
            await self._error(ws, "no_such_call", "No such call.", "hold")
            return
        live.status = "held" if message["on"] else "connected"
        if self.leg:
            self.leg.tone.playing = live.status == "connected"
        await self.broadcast(live.call_message())

    async def _on_mute(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        live = self._the_call(message, "connected", "held")
        if live is None:
            await self._error(ws, "no_such_call", "No such call.", "mute")
            return
        live.muted = bool(message["on"])
        await self.broadcast(live.call_message())

    async def _on_dtmf(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        live = self._the_call(message, "connected", "held")
        if live is None:
            await self._error(ws, "no_such_call", "No such call.", "dtmf")
        elif not isinstance(message["digits"], str) or not DTMF.match(message["digits"]):
            await self._error(ws, "bad_message", "digits: 1-32 of 0-9 * # A-D.", "dtmf")
        else:
            live.dtmf.append(message["digits"])

    async def _on_ping(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        await self._send(ws, {"type": "pong", "t": message["t"], "server_time": iso(now())})

    # ---------------------------------------------------------- messages

    def hello(self) -> dict[str, Any]:
        live = self.live if self.live and self.live.status in ("connected", "held") else None
        return {
            "type": "hello",
            "agent": {"login": AGENT["login"], "name": AGENT["name"]},
            "ice_servers": [],
            "codec": "PCMU",
            "ring_timeout_s": self.ring_timeout_s,
            "server_time": iso(now()),
            "call": live.call_message() if live else None,
        }

    def slots(self) -> list[dict[str, Any]]:
        hour = now().replace(minute=0, second=0, microsecond=0)
        first = hour - timedelta(hours=1) if self.on_shift else hour + timedelta(days=1)
        slots = []
        for day in range(4):
            start = first + timedelta(days=day)
            end = start + timedelta(hours=4)
            slots.append(
                {
                    "start": iso(start),
                    "end": iso(end),
                    "clients": [ACME, GLOBEX] if day % 2 == 0 else [ACME],
                    "now": start <= now() < end,
                }
            )
        return slots

    def why_not(self) -> str | None:
        if self.on_shift:
            return None
        start = datetime.fromisoformat(self.slots()[0]["start"].replace("Z", "+00:00"))
        return f"You are not on shift. Your next slot starts {start:%a %d %b %H:%M}."

    def state_message(self) -> dict[str, Any]:
        slots = self.slots()
        current = next((s for s in slots if s["now"]), None)
        return {
            "type": "state",
            "state": self.state,
            "reason": self.reason,
            "since": iso(self.since),
            "on_shift": self.on_shift,
            "can_go_available": self.on_shift and self.state in ("paused", "logged_out", "wrap_up"),
            "why_not": self.why_not(),
            "current_slot": {k: current[k] for k in ("start", "end", "clients")} if current else None,
            "next_slot_start": None if self.on_shift else slots[0]["start"],
        }

    def shifts_message(self) -> dict[str, Any]:
        return {"type": "shifts", "slots": self.slots()}

    def _set_state(self, state: str, reason: str | None) -> None:
        if (state, reason) != (self.state, self.reason):
            self.since = now()
        self.state, self.reason = state, reason

    # ------------------------------------------------- driven by the tests

    async def send_offer(
        self, client: dict[str, Any] = ACME, caller: str = "06 12 •• •• 78", waited_s: float = 4.2
    ) -> str:
        """Ring the agent (whatever their state: a test decides when)."""
        call_id = f"call-{uuid.uuid4().hex[:8]}"
        self.live = Live(call_id, client, caller, waited_s, now() - timedelta(seconds=waited_s))
        self._set_state("ringing", None)
        await self.broadcast(
            {
                "type": "offer",
                "call_id": call_id,
                "client": client,
                "caller": caller,
                "waited_s": waited_s,
                "queued_at": iso(self.live.queued_at),
                "ring_timeout_s": self.ring_timeout_s,
            }
        )
        await self.broadcast(self.state_message())
        loop = asyncio.get_running_loop()
        self._ring_timer = loop.call_later(
            self.ring_timeout_s, lambda: asyncio.ensure_future(self.cancel_offer("timeout"))
        )
        return call_id

    async def cancel_offer(
        self, reason: str = "caller_hung_up", next_state: tuple[str, str | None] = ("available", None)
    ) -> None:
        if self.live is None or self.live.status != "ringing":
            return
        call_id = self.live.call_id
        await self._drop_offer()
        self._set_state(*next_state)
        await self.broadcast({"type": "offer_cancelled", "call_id": call_id, "reason": reason})
        await self.broadcast(self.state_message())

    async def _drop_offer(self) -> None:
        self._stop_ring_timer()
        self.live = None
        if self.leg:
            await self.leg.close()
            self.leg = None

    def _stop_ring_timer(self) -> None:
        if self._ring_timer:
            self._ring_timer.cancel()
            self._ring_timer = None

    async def caller_hangs_up(self) -> None:
        await self._end_call("caller")

    async def _end_call(self, ended_by: str) -> None:
        live = self.live
        if live is None or live.status not in ("connected", "held"):
            return
        live.status = "ended"
        self.live = None
        if self.leg:
            await self.leg.close()
        self._set_state("wrap_up", None)
        await self.broadcast(live.call_message(ended_by))
        await self.broadcast(self.state_message())

    async def set_on_shift(self, on_shift: bool) -> None:
        self.on_shift = on_shift
        if not on_shift and self.state == "available":
            self._set_state("paused", None)
        await self.broadcast(self.state_message())
        await self.broadcast(self.shifts_message())

    async def drop_sockets(self) -> None:
        """Close every agent WebSocket, as a network drop or a restart would."""
        for ws in list(self.sockets):
            await ws.close(code=1012)

    async def wait_for(self, kind: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """The first message of `kind` (with these field values) the page sent, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.received:
                if message.get("type") == kind and all(message.get(k) == v for k, v in fields.items()):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the page never sent {kind} {fields}; it sent {self.received}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    # ------------------------------------------------ manual control (HTTP)

    async def _fake_offer(self, request: web.Request) -> web.Response:
        client = GLOBEX if request.query.get("client") == "globex" else ACME
        return web.json_response({"call_id": await self.send_offer(client)})

    async def _fake_cancel(self, request: web.Request) -> web.Response:
        await self.cancel_offer(request.query.get("reason", "caller_hung_up"))
        return web.Response(status=204)

    async def _fake_hangup(self, request: web.Request) -> web.Response:
        await self.caller_hangs_up()
        return web.Response(status=204)

    async def _fake_shift(self, request: web.Request) -> web.Response:
        await self.set_on_shift(request.query.get("on", "1") != "0")
        return web.Response(status=204)

    async def _fake_drop(self, request: web.Request) -> web.Response:
        await self.drop_sockets()
        return web.Response(status=204)


async def _serve(port: int) -> None:
    bridge = FakeBridge()
    with loopback_ice():
        url = await bridge.start(port=port)
        print(f"fake bridge on {url}/login (alice / {PASSWORD})", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await bridge.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8099)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args().port))
