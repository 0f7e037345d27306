"""Browser sessions: an opaque token in an HttpOnly cookie, the rest on the server.

Sessions live in this process: a restart signs everyone out, which the
softphone survives by showing the login page again. Expiry is absolute
(a working day by default) and idle (an hour without any request, or
without an open page: see web_agent's socket sweep). A tenant admin lists
and revokes sessions by an id derived from the token, never the token.
"""

from __future__ import annotations

import hashlib
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
    # Where it signed in from, and when by the wall clock: for the admin's list.
    source: str = ""
    started_at: float = 0.0

    @property
    def id(self) -> str:
        """An opaque name for the session: knowing it lets nobody act as it."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]


class SessionStore:
    def __init__(
        self,
        *,
        absolute_ttl_s: float = ABSOLUTE_TTL_S,
        idle_ttl_s: float = IDLE_TTL_S,
        max_sessions: int = MAX_SESSIONS,
        now: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._absolute_ttl_s = absolute_ttl_s
        self._idle_ttl_s = idle_ttl_s
        self._max_sessions = max_sessions
        self._now = now
        self._wall = wall
        self._sessions: dict[str, Session] = {}

    def create(self, principal: Principal, source: str = "") -> Session:
        self._expire()
        if len(self._sessions) >= self._max_sessions:
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.token]
        now = self._now()
        session = Session(secrets.token_urlsafe(32), principal, now, now, source, self._wall())
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
        if self._expired(session, now):
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def end(self, token: str | None) -> Session | None:
        return self._sessions.pop(token, None) if token else None

    def live(self) -> list[Session]:
        """Every live session, oldest first; none is refreshed by being listed."""
        self._expire()
        return sorted(self._sessions.values(), key=lambda s: s.created)

    def revoke(self, session_id: str) -> Session | None:
        found = next((s for s in self.live() if s.id == session_id), None)
        return self.end(found.token) if found is not None else None

    def revoke_login(self, login: str) -> list[Session]:
        return [s for s in self.live() if s.principal.login == login and self.end(s.token) is not None]

    def expires_at(self, session: Session) -> float:
        """When the session ends if nothing refreshes it, by the wall clock."""
        ends = min(session.created + self._absolute_ttl_s, session.last_seen + self._idle_ttl_s)
        return self.wall_time(ends)

    def wall_time(self, moment: float) -> float:
        """A moment of this store's (monotonic) clock, by the wall clock."""
        return self._wall() - (self._now() - moment)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.created > self._absolute_ttl_s or now - session.last_seen > self._idle_ttl_s

    def _expire(self) -> None:
        now = self._now()
        for token, session in list(self._sessions.items()):
            if self._expired(session, now):
                del self._sessions[token]
