"""Browser sessions: an opaque token in an HttpOnly cookie, the rest on the server.

Sessions live in this process: a restart signs everyone out, which the
softphone survives by showing the login page again. Expiry is absolute
(a working day) and idle (an hour without any request or WebSocket traffic).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent_client.web_auth import Principal

COOKIE = "hotline_session"
ABSOLUTE_TTL_S = 12 * 3600.0
IDLE_TTL_S = 3600.0
MAX_SESSIONS = 10_000


@dataclass
class Session:
    token: str
    principal: Principal
    created: float
    last_seen: float


class SessionStore:
    def __init__(
        self,
        *,
        absolute_ttl_s: float = ABSOLUTE_TTL_S,
        idle_ttl_s: float = IDLE_TTL_S,
        max_sessions: int = MAX_SESSIONS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._absolute_ttl_s = absolute_ttl_s
        self._idle_ttl_s = idle_ttl_s
        self._max_sessions = max_sessions
        self._now = now
        self._sessions: dict[str, Session] = {}

    def create(self, principal: Principal) -> Session:
        self._expire()
        if len(self._sessions) >= self._max_sessions:
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.token]
        now = self._now()
        session = Session(secrets.token_urlsafe(32), principal, now, now)
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for `token`, refreshed; None if unknown or expired."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self._now()
        if now - session.created > self._absolute_ttl_s or now - session.last_seen > self._idle_ttl_s:
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def end(self, token: str | None) -> Session | None:
        return self._sessions.pop(token, None) if token else None

    def _expire(self) -> None:
        now = self._now()
        for token, session in list(self._sessions.items()):
            if now - session.created > self._absolute_ttl_s or now - session.last_seen > self._idle_ttl_s:
                del self._sessions[token]
