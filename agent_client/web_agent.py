"""The agent's side of the web: login, the softphone pages, and its WebSocket.

The WebSocket carries versioned JSON (docs/agent-protocol.md). Every message
is checked here for shape; what it may do is the dispatcher's call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from agent_client.web_auth import Authenticator, Principal, Role
from agent_client.web_sessions import COOKIE, Session, SessionStore

log = structlog.get_logger("agent_client.ws")

STATIC_DIR = Path(__file__).resolve().parent / "static"
PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
# The socket was replaced by the same agent's newer page (docs/agent-protocol.md).
DISPLACED_CLOSE_CODE = 4001
# Messages a browser may send, and the fields each must carry.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "set_state": ("state",),
    "rtc_offer": ("call_id", "sdp"),
    "answer": ("call_id",),
    "decline": ("call_id",),
    "hangup": ("call_id",),
    "hold": ("call_id", "on"),
    "mute": ("call_id", "on"),
    "dtmf": ("call_id", "digits"),
    "record": ("call_id",),
    "ping": ("t",),
}

Message = dict[str, Any]


class AgentDesk(Protocol):
    async def agent_connected(self, login: str, link: Any) -> None: ...

    async def agent_disconnected(self, login: str, link: Any) -> None: ...

    async def handle(self, login: str, message: Message) -> None: ...


SESSIONS = web.AppKey("sessions", SessionStore)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
DESK = web.AppKey("desk", object)
SECURE_COOKIES = web.AppKey("secure_cookies", bool)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def session_of(request: web.Request) -> Session | None:
    return request.app[SESSIONS].get(request.cookies.get(COOKIE))


async def login(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _json({"error": "expected a JSON body with login and password"}, 400)
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("login", "password")):
        return _json({"error": "expected a JSON body with login and password", "field": "login"}, 400)
    principal = await request.app[AUTHENTICATOR].check(body["login"], body["password"])
    if principal is None:
        return _json({"error": "Wrong login or password."}, 401)
    session = request.app[SESSIONS].create(principal)
    response = _json(_me(request, principal))
    response.set_cookie(
        COOKIE, session.token, httponly=True, samesite="Strict", path="/", secure=request.app[SECURE_COOKIES]
    )
    log.info("signed_in", login=principal.login, role=principal.role.value)
    return response


def _me(request: web.Request, principal: Principal) -> Message:
    tenant_people = request.app[AUTHENTICATOR].name_of(principal.login)
    return {"login": principal.login, "name": tenant_people, "role": principal.role.value}


async def logout(request: web.Request) -> web.Response:
    session = request.app[SESSIONS].end(request.cookies.get(COOKIE))
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    if session is not None:
        for ws in list(request.app[_SOCKETS].get(session.token, ())):
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"signed out")
    return response


async def me(request: web.Request) -> web.Response:
    session = session_of(request)
    if session is None:
        return _json({"error": "not signed in"}, 401)
    return _json(_me(request, session.principal))


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        if name != "login.html" and session_of(request) is None:
            raise web.HTTPFound("/login")
        return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-store"})

    return serve


async def root(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is None:
        raise web.HTTPFound("/login")
    homes = {Role.SUPERVISOR: "/supervisor", Role.CLIENT_ADMIN: "/client"}
    raise web.HTTPFound(homes.get(session.principal.role, "/agent"))


_SOCKETS = web.AppKey("sockets", dict)


class SocketLink:
    """The dispatcher's handle on one WebSocket: sends never block the caller."""

    def __init__(self, ws: web.WebSocketResponse, login: str) -> None:
        self.ws = ws
        self.login = login
        self._outbox: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=256)
        self._closing: asyncio.Future[None] | None = None
        self._writer = asyncio.create_task(self._write())

    def send(self, message: Message) -> None:
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            # A browser this far behind is gone in all but name.
            log.warning("socket_link_overflow", login=self.login)
            self._closing = asyncio.ensure_future(self.close("too slow"))

    async def _write(self) -> None:
        while (message := await self._outbox.get()) is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_json(message)

    async def close(self, reason: str) -> None:
        await self.ws.close(code=DISPLACED_CLOSE_CODE, message=reason.encode()[:120])

    async def finish(self) -> None:
        self._outbox.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


def validate_message(raw: str, required_fields: Mapping[str, tuple[str, ...]] = REQUIRED_FIELDS) -> Message:
    try:
        message = json.loads(raw)
    except json.JSONDecodeError:
        raise BadMessage("bad_message", "not JSON") from None
    if not isinstance(message, dict):
        raise BadMessage("bad_message", "a message is a JSON object")
    if message.get("v") != PROTOCOL_VERSION:
        raise BadMessage("unsupported_version", f"this server speaks version {PROTOCOL_VERSION}")
    kind = message.get("type")
    required = required_fields.get(kind) if isinstance(kind, str) else None
    if required is None:
        raise BadMessage("bad_message", f"unknown message type {kind!r}")
    missing = [name for name in required if name not in message]
    if missing:
        raise BadMessage("bad_message", f"{kind} needs {', '.join(missing)}")
    return message


class BadMessage(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def agent_socket(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is None:
        return _json({"error": "not signed in"}, 401)
    if session.principal.role is not Role.AGENT:
        return _json({"error": "the softphone is for agents"}, 403)
    if not same_origin(request):
        return _json({"error": "cross-origin WebSocket refused"}, 403)
    ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    if request.query.get("probe") == "1":
        # The mic check measures round trips without taking the softphone's place.
        return await _probe(ws)
    login_name = session.principal.login
    desk: AgentDesk = request.app[DESK]  # type: ignore[assignment]
    link = SocketLink(ws, login_name)
    sockets = request.app[_SOCKETS].setdefault(session.token, set())
    sockets.add(ws)
    await desk.agent_connected(login_name, link)
    pending: set[asyncio.Task[None]] = set()
    try:
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            if request.app[SESSIONS].get(session.token) is None:
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session expired")
                break
            try:
                message = validate_message(frame.data)
            except BadMessage as exc:
                link.send({"v": 1, "type": "error", "code": exc.code, "message": str(exc), "ref": None})
                continue
            if message["type"] == "answer":
                # Answering waits for the media leg, which a later message may be
                # setting up: it must not hold up this socket's reading.
                pending.add(task := asyncio.create_task(_serve_one(desk, link, login_name, message)))
                task.add_done_callback(pending.discard)
            else:
                await _serve_one(desk, link, login_name, message)
    finally:
        for task in pending:
            task.cancel()
        sockets.discard(ws)
        await desk.agent_disconnected(login_name, link)
        await link.finish()
    return ws


async def _probe(ws: web.WebSocketResponse) -> web.WebSocketResponse:
    async for frame in ws:
        if frame.type is not WSMsgType.TEXT:
            continue
        try:
            message = validate_message(frame.data)
        except BadMessage as exc:
            await ws.send_json({"v": 1, "type": "error", "code": exc.code, "message": str(exc)})
            continue
        if message["type"] != "ping":
            await ws.send_json(
                {
                    "v": 1,
                    "type": "error",
                    "code": "not_allowed",
                    "message": "a probe only pings",
                    "ref": message["type"],
                }
            )
            continue
        await ws.send_json({"v": 1, "type": "pong", "t": message["t"]})
    return ws


async def _serve_one(desk: AgentDesk, link: SocketLink, login_name: str, message: Message) -> None:
    try:
        await desk.handle(login_name, message)
    except ValueError as exc:
        code = getattr(exc, "code", "bad_message")
        link.send({"v": 1, "type": "error", "code": code, "message": str(exc), "ref": message["type"]})


def add_agent_routes(
    app: web.Application,
    *,
    sessions: SessionStore,
    authenticator: Authenticator,
    desk: AgentDesk,
    secure_cookies: bool = False,
) -> None:
    app[SESSIONS] = sessions
    app[AUTHENTICATOR] = authenticator
    app[DESK] = desk
    app[SECURE_COOKIES] = secure_cookies
    app[_SOCKETS] = {}
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/", root)
    app.router.add_get("/login", _page("login.html"))
    app.router.add_get("/agent", _page("agent.html"))
    app.router.add_get("/agent/mic-check", _page("mic-check.html"))
    app.router.add_get("/ws/agent", agent_socket)
    if STATIC_DIR.is_dir():
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
