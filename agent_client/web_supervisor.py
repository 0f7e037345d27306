"""The supervisor's side of the web: the wallboard page, its WebSocket, and live calls over HTTP.

Every request and every message is checked against the supervisor's scope
by `telephony.supervision.Supervision`, never by the page.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aiohttp import web

from agent_client.web_agent import (
    MAX_MESSAGE_BYTES,
    STATIC_DIR,
    SocketLink,
    registered,
    session_of,
    socket_messages,
)
from agent_client.web_app import CONTEXT, principal_of
from agent_client.web_auth import Role
from agent_client.web_edge import same_origin
from agent_client.web_sessions import Session
from dialplan.clock import iso_z
from store.call_scores import CallScore, CallScores

log = structlog.get_logger("agent_client.supervisor")

Message = dict[str, Any]
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "join": ("call_id", "sdp", "mode"),
    "mode": ("call_id", "mode"),
    "leave": ("call_id",),
    "record": ("call_id",),
    "ping": ("t",),
}


class SupervisorDesk(Protocol):
    async def connected(self, login: str, link: Any) -> None: ...

    async def disconnected(self, login: str, link: Any) -> None: ...

    async def handle(self, login: str, message: Message) -> None: ...

    def calls(self, login: str) -> list[Message]: ...

    def live_call(self, login: str, call_id: str) -> Any: ...

    def scope(self, login: str) -> frozenset[str]: ...

    async def record(self, login: str, call_id: str) -> None: ...


SUPERVISION = web.AppKey("supervision", object)
MAX_COMMENT_CHARS = 2000


def _supervisor(request: web.Request) -> Session | web.Response:
    session = session_of(request)
    if session is None:
        return web.json_response({"error": "not signed in"}, status=401)
    if session.principal.role is not Role.SUPERVISOR:
        return web.json_response({"error": "the wallboard is for supervisors"}, status=403)
    return session


def _desk(request: web.Request) -> SupervisorDesk:
    return request.app[SUPERVISION]  # type: ignore[return-value]


async def page(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is None:
        raise web.HTTPFound("/login")
    if session.principal.role is not Role.SUPERVISOR:
        raise web.HTTPForbidden(text="The wallboard is for supervisors.")
    return web.FileResponse(STATIC_DIR / "supervisor.html", headers={"Cache-Control": "no-store"})


async def _api_supervisor(request: web.Request) -> str:
    """The supervisor's login, signed in by session or by HTTP Basic (scripts), as the records API."""
    principal = await principal_of(request)
    if principal.role is not Role.SUPERVISOR:
        raise web.HTTPForbidden(text='{"error": "live calls are for supervisors"}', content_type="application/json")
    return principal.login


async def list_calls(request: web.Request) -> web.Response:
    login = await _api_supervisor(request)
    return web.json_response({"calls": _desk(request).calls(login)})


async def get_call(request: web.Request) -> web.Response:
    login = await _api_supervisor(request)
    desk = _desk(request)
    call_id = request.match_info["call_id"]
    try:
        desk.live_call(login, call_id)
    except ValueError as exc:
        status = getattr(exc, "status", 403)
        return web.json_response({"error": str(exc), "code": getattr(exc, "code", "forbidden")}, status=status)
    view = next(c for c in desk.calls(login) if c["call_id"] == call_id)
    return web.json_response(view)


async def score_call(request: web.Request) -> web.Response:
    """A supervisor scores a call of a client they supervise, during it or after (1 to 5, with a comment)."""
    login = await _api_supervisor(request)
    call_id = request.match_info["call_id"]
    record = await request.app[CONTEXT].records.get_call(call_id)
    # Out of scope and absent look the same: ids are not to be probed.
    if record is None or record.client_id not in _desk(request).scope(login):
        return web.json_response({"error": "no such call"}, status=404)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return _bad("body", 'expected a JSON object {"score": 1 to 5, "comment": "..."}')
    score, comment = body.get("score"), body.get("comment", "")
    if isinstance(score, float) and score.is_integer():
        score = int(score)  # 4.0 is JSON's 4 (and JSON Schema's integer) as much as 4 is
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        return _bad("score", "score: expected a whole number 1 to 5")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        return _bad("comment", f"comment: expected a string of at most {MAX_COMMENT_CHARS} characters")
    scores = CallScores(request.app[CONTEXT].records.engine)
    await scores.add(CallScore(call_id, login, score, comment, datetime.now(UTC)))
    log.info("call_scored", call_id=call_id, supervisor=login, score=score)
    return web.json_response(
        {
            "call_id": call_id,
            "scores": [
                {"supervisor": s.supervisor, "score": s.score, "comment": s.comment, "at": iso_z(s.at)}
                for s in await scores.of_call(call_id)
            ],
        }
    )


def _bad(field: str, message: str) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=400)


async def record_call(request: web.Request) -> web.Response:
    """Start recording a live call, where its client records on demand."""
    login = await _api_supervisor(request)
    call_id = request.match_info["call_id"]
    try:
        await _desk(request).record(login, call_id)
    except ValueError as exc:
        status = getattr(exc, "status", 409)
        return web.json_response({"error": str(exc), "code": getattr(exc, "code", "forbidden")}, status=status)
    return web.json_response({"call_id": call_id, "recording": "on"})


async def socket(request: web.Request) -> web.StreamResponse:
    found = _supervisor(request)
    if isinstance(found, web.Response):
        return found
    if not same_origin(request):
        return web.json_response({"error": "cross-origin WebSocket refused"}, status=403)
    session = found
    ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    with registered(request.app, session.token, ws):
        await _serve_socket(request, session, ws)
    return ws


async def _serve_socket(request: web.Request, session: Session, ws: web.WebSocketResponse) -> None:
    login = session.principal.login
    desk = _desk(request)
    link = SocketLink(ws, login)
    await desk.connected(login, link)
    pending: set[asyncio.Task[None]] = set()
    try:
        async for message in socket_messages(request, session, ws, link, REQUIRED_FIELDS):
            # Joining waits on the worker: it must not hold up this socket's other messages.
            pending.add(task := asyncio.create_task(_serve_one(desk, link, login, message)))
            task.add_done_callback(pending.discard)
    finally:
        for task in pending:
            task.cancel()
        await desk.disconnected(login, link)
        await link.finish()


async def _serve_one(desk: SupervisorDesk, link: SocketLink, login: str, message: Message) -> None:
    try:
        await desk.handle(login, message)
    except ValueError as exc:
        code = getattr(exc, "code", "bad_message")
        link.send(
            {
                "v": 1,
                "type": "error",
                "code": code,
                "message": str(exc),
                "ref": message["type"],
                "call_id": message.get("call_id"),
            }
        )


def add_supervisor_routes(app: web.Application, *, supervision: SupervisorDesk) -> None:
    app[SUPERVISION] = supervision
    app.router.add_get("/supervisor", page)
    app.router.add_get("/ws/supervisor", socket)
    app.router.add_get("/api/supervisor/calls", list_calls)
    app.router.add_get("/api/supervisor/calls/{call_id}", get_call)
    app.router.add_post("/api/supervisor/calls/{call_id}/score", score_call)
    app.router.add_post("/api/supervisor/calls/{call_id}/record", record_call)
