"""Tenant admins over the browser sessions: who is signed in, and ending a session or all of a login's.

A session is named by an opaque id (web_sessions.Session.id), never by its
token. Ending one closes its open pages' WebSockets at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from aiohttp import web

from agent_client.web_agent import SESSIONS, close_sockets
from agent_client.web_app import bad_request, json_response, principal_of
from agent_client.web_auth import Principal, Role
from agent_client.web_sessions import Session, SessionStore
from dialplan.clock import iso_z

log = structlog.get_logger("agent_client.admin")


async def _admin(request: web.Request) -> Principal:
    principal = await principal_of(request)
    if principal.role is not Role.ADMIN:
        raise web.HTTPForbidden(text='{"error": "sessions are for tenant admins"}', content_type="application/json")
    return principal


def _at(moment: float) -> str | None:
    return iso_z(datetime.fromtimestamp(moment, UTC))


def _view(store: SessionStore, session: Session) -> dict[str, object]:
    return {
        "id": session.id,
        "login": session.principal.login,
        "role": session.principal.role.value,
        "source": session.source,
        "signed_in_at": _at(session.started_at),
        "last_seen_at": _at(store.wall_time(session.last_seen)),
        "expires_at": _at(store.expires_at(session)),
    }


async def list_sessions(request: web.Request) -> web.Response:
    await _admin(request)
    store = request.app[SESSIONS]
    login = request.query.get("login")
    found = [s for s in store.live() if login is None or s.principal.login == login]
    return json_response({"sessions": [_view(store, s) for s in found]})


async def revoke_session(request: web.Request) -> web.Response:
    admin = await _admin(request)
    session = request.app[SESSIONS].revoke(request.match_info["session_id"])
    if session is None:
        return json_response({"error": "no such session"}, 404)
    await close_sockets(request.app, session.token, "signed out by an admin")
    log.warning("session_revoked", session=session.id, login=session.principal.login, by=admin.login)
    return json_response({"revoked": [session.id]})


async def revoke_login(request: web.Request) -> web.Response:
    admin = await _admin(request)
    login = request.query.get("login")
    if not login:
        raise bad_request("login", "login: whose sessions to end, e.g. ?login=alice")
    ended = request.app[SESSIONS].revoke_login(login)
    for session in ended:
        await close_sockets(request.app, session.token, "signed out by an admin")
    log.warning("sessions_revoked", login=login, count=len(ended), by=admin.login)
    return json_response({"revoked": [s.id for s in ended]})


def add_admin_routes(app: web.Application) -> None:
    """Needs the agent routes' session store (add_agent_routes)."""
    app.router.add_get("/api/admin/sessions", list_sessions)
    app.router.add_delete("/api/admin/sessions", revoke_login)
    app.router.add_delete("/api/admin/sessions/{session_id}", revoke_session)
