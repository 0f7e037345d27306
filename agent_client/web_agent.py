"""The agent's side of the web: login, the softphone pages, and its WebSocket.

The WebSocket carries versioned JSON (docs/agent-protocol.md). Every message
is checked here for shape; what it may do is the dispatcher's call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from agent_client.web_auth import Authenticator, Principal, Role, Throttled
from agent_client.web_edge import edge_of, same_origin, source_of
from agent_client.web_sessions import COOKIE, Session, SessionStore

log = structlog.get_logger("agent_client.ws")

STATIC_DIR = Path(__file__).resolve().parent / "static"
PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_LOGIN_CHARS = 128
MAX_PASSWORD_CHARS = 1024
# How often open pages' sessions are checked: kept alive while the page is
# open, closed once revoked or past their absolute lifetime.
SOCKET_SWEEP_S = 30.0
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


def too_many(throttled: Throttled) -> web.Response:
    """The answer to a throttled sign-in, the same whether the login exists or not."""
    wait = throttled.retry_after_s
    return web.json_response(
        {"error": f"Too many failed sign-ins. Try again in {wait} s.", "retry_after_s": wait},
        status=429,
        headers={"Retry-After": str(wait)},
    )


def _login_body(body: object) -> tuple[str, str] | web.Response:
    if not isinstance(body, dict):
        return _json({"error": 'expected a JSON object {"login": "...", "password": "..."}', "field": "body"}, 400)
    for name, longest in (("login", MAX_LOGIN_CHARS), ("password", MAX_PASSWORD_CHARS)):
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= longest:
            return _json({"error": f"{name}: expected a string of 1 to {longest} characters", "field": name}, 400)
    return body["login"], body["password"]


async def login(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    found = _login_body(body)
    if isinstance(found, web.Response):
        return found
    source = source_of(request)
    result = await request.app[AUTHENTICATOR].attempt(*found, source)
    if isinstance(result, Throttled):
        log.warning("sign_in_throttled", source=source, retry_after_s=result.retry_after_s)
        return too_many(result)
    if result is None:
        log.info("sign_in_failed", source=source)
        return _json({"error": "Wrong login or password."}, 401)
    session = request.app[SESSIONS].create(result, source)
    response = _json(_me(request, result))
    secure = request.app[SECURE_COOKIES] or edge_of(request.app).secure
    response.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict", path="/", secure=secure)
    log.info("signed_in", login=result.login, role=result.role.value, session=session.id)
    return response


def _me(request: web.Request, principal: Principal) -> Message:
    tenant_people = request.app[AUTHENTICATOR].name_of(principal.login)
    return {"login": principal.login, "name": tenant_people, "role": principal.role.value}


async def logout(request: web.Request) -> web.Response:
    session = request.app[SESSIONS].end(request.cookies.get(COOKIE))
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    if session is not None:
        await close_sockets(request.app, session.token, "signed out")
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


# Each session's open WebSockets (agent and supervisor pages), so that ending it closes them.
SOCKETS = web.AppKey("sockets", dict[str, set[web.WebSocketResponse]])


async def close_sockets(app: web.Application, token: str, reason: str) -> None:
    for ws in list(app[SOCKETS].get(token, ())):
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode()[:120])


@contextlib.contextmanager
def registered(app: web.Application, token: str, ws: web.WebSocketResponse) -> Iterator[None]:
    sockets = app[SOCKETS].setdefault(token, set())
    sockets.add(ws)
    try:
        yield
    finally:
        sockets.discard(ws)
        if not sockets:
            app[SOCKETS].pop(token, None)


async def _sweep_sockets(app: web.Application) -> None:
    while True:
        await asyncio.sleep(SOCKET_SWEEP_S)
        open_pages: dict[str, set[web.WebSocketResponse]] = app[SOCKETS]
        for token in list(open_pages):
            # An open page is activity (its socket answers heartbeats): refresh, or close if over.
            if app[SESSIONS].get(token) is None:
                try:
                    await close_sockets(app, token, "session expired")
                except Exception:
                    log.exception("socket_sweep_failed")


async def _socket_sweeper(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_sweep_sockets(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
    with registered(request.app, session.token, ws):
        if request.query.get("probe") == "1":
            # The mic check measures round trips without taking the softphone's place.
            return await _probe(ws)
        desk: AgentDesk = request.app[DESK]  # type: ignore[assignment]
        await _serve_socket(request, session, ws, desk, SocketLink(ws, session.principal.login))
    return ws


async def socket_messages(
    request: web.Request,
    session: Session,
    ws: web.WebSocketResponse,
    link: SocketLink,
    required_fields: Mapping[str, tuple[str, ...]] = REQUIRED_FIELDS,
) -> AsyncIterator[Message]:
    """A socket's valid messages, while its session lasts; a bad one is answered with an error and skipped."""
    async for frame in ws:
        if frame.type is not WSMsgType.TEXT:
            continue
        if request.app[SESSIONS].get(session.token) is None:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session expired")
            return
        try:
            yield validate_message(frame.data, required_fields)
        except BadMessage as exc:
            link.send({"v": 1, "type": "error", "code": exc.code, "message": str(exc), "ref": None})


async def _serve_socket(
    request: web.Request, session: Session, ws: web.WebSocketResponse, desk: AgentDesk, link: SocketLink
) -> None:
    login_name = session.principal.login
    await desk.agent_connected(login_name, link)
    pending: set[asyncio.Task[None]] = set()
    try:
        async for message in socket_messages(request, session, ws, link):
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
        await desk.agent_disconnected(login_name, link)
        await link.finish()


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
    app[SOCKETS] = {}
    app.cleanup_ctx.append(_socket_sweeper)
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
