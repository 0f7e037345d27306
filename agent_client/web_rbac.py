"""Who may use what: every route and every WebSocket message, by role, and how it is scoped.

This is the one list. Each handler enforces its own row (the checks sit next
to the work, where a reviewer reads them); tests/web/test_rbac_matrix.py
drives every route as every role, in and out of scope, through the real app
and fails when a handler disagrees with its row or a route has no row.

A bridge serves one tenant, so "out of scope" means another client of the
tenant: a client admin sees their own client only, a supervisor the clients
they supervise, an agent their own pay and calls. Tenant admins see all.
Whatever is out of scope answers `out_of_scope`: 404 where an id is named
(ids are not to be probed), 403 where the client is named in the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent_client.web_auth import Role


class Access(StrEnum):
    # Anyone, signed in or not.
    PUBLIC = "public"
    # A browser session or HTTP Basic (scripts); anonymous: 401 with WWW-Authenticate.
    API = "api"
    # A browser session only (the pages' own JSON); anonymous: 401.
    SESSION = "session"
    # A page: a browser session; anonymous: a redirect to /login.
    PAGE = "page"
    # A WebSocket: a browser session from the bridge's own origin; anonymous: 401.
    SOCKET = "socket"


ALL = frozenset(Role)
ADMIN = frozenset({Role.ADMIN})
SUPERVISOR = frozenset({Role.SUPERVISOR})
AGENT = frozenset({Role.AGENT})
CLIENT_ADMINS = frozenset({Role.CLIENT_ADMIN, Role.ADMIN})
VIEWERS = frozenset({Role.SUPERVISOR, Role.CLIENT_ADMIN, Role.ADMIN})


@dataclass(frozen=True)
class Rule:
    method: str
    path: str
    access: Access
    roles: frozenset[Role]
    # How the answer is narrowed to the caller's clients (empty: it is not).
    scope: str = ""
    # The status of an allowed role asking for another client's thing; None: no such thing to ask for.
    out_of_scope: int | None = None


R = Rule
A = Access
ROUTES: tuple[Rule, ...] = (
    R("GET", "/healthz", A.PUBLIC, ALL),
    R("GET", "/api/openapi.json", A.PUBLIC, ALL),
    R("GET", "/static", A.PUBLIC, ALL),
    R("GET", "/login", A.PUBLIC, ALL),
    R("POST", "/api/login", A.PUBLIC, ALL),
    R("POST", "/api/logout", A.PUBLIC, ALL),
    R("GET", "/api/me", A.SESSION, ALL),
    R("GET", "/", A.PAGE, ALL),
    # The pages are static shells: what they show comes over their socket or API, checked there.
    R("GET", "/agent", A.PAGE, ALL),
    R("GET", "/agent/mic-check", A.PAGE, ALL),
    R("GET", "/ws/agent", A.SOCKET, AGENT, "the agent's own offers and calls (the dispatcher)"),
    R("GET", "/supervisor", A.PAGE, SUPERVISOR),
    R("GET", "/ws/supervisor", A.SOCKET, SUPERVISOR, "calls and queues of the supervised clients"),
    R("GET", "/client", A.PAGE, CLIENT_ADMINS),
    R("GET", "/reports", A.PAGE, VIEWERS),
    R("GET", "/api/calls", A.API, VIEWERS, "records of the caller's clients; ?client= another: 403", 403),
    R("GET", "/api/calls/{call_id}", A.API, VIEWERS, "a record of another client: 404", 404),
    R("GET", "/api/workers", A.API, ADMIN),
    R("GET", "/api/supervisor/calls", A.API, SUPERVISOR, "live calls of the supervised clients"),
    R("GET", "/api/supervisor/calls/{call_id}", A.API, SUPERVISOR, "another client's live call: 403", 403),
    R("POST", "/api/supervisor/calls/{call_id}/score", A.API, SUPERVISOR, "another client's call: 404", 404),
    R("POST", "/api/supervisor/calls/{call_id}/record", A.API, SUPERVISOR, "another client's call: 404", 404),
    R("GET", "/api/overflow/lines", A.API, CLIENT_ADMINS, "the caller's clients' lines"),
    R("GET", "/api/overflow/lines/{line}", A.API, CLIENT_ADMINS, "another client's line: 404", 404),
    R("POST", "/api/overflow/lines/{line}/switch", A.API, CLIENT_ADMINS, "another client's line: 404", 404),
    R("PUT", "/api/overflow/lines/{line}/schedule", A.API, CLIENT_ADMINS, "another client's line: 404", 404),
    R("POST", "/api/overflow/lines/{line}/takeover", A.API, CLIENT_ADMINS, "another client's line: 404", 404),
    R("PUT", "/api/overflow/lines/{line}/end_policy", A.API, CLIENT_ADMINS, "another client's line: 404", 404),
    R("GET", "/api/overflow/audit", A.API, CLIENT_ADMINS, "changes to the caller's clients' lines"),
    R("GET", "/api/pay/statement", A.API, AGENT | ADMIN, "an agent's own; ?agent= another: 403", 403),
    R("GET", "/api/reports", A.API, VIEWERS, "the caller's clients; ?client= another: 403", 403),
    R("GET", "/api/recordings", A.API, VIEWERS, "the caller's clients' recordings they may play"),
    R("GET", "/api/recordings/{call_id}", A.API, VIEWERS, "another client's: 403, audited", 403),
    R("GET", "/api/recordings/{call_id}/access", A.API, VIEWERS, "another client's: 403", 403),
    R("GET", "/api/admin/sessions", A.API, ADMIN),
    R("DELETE", "/api/admin/sessions", A.API, ADMIN),
    R("DELETE", "/api/admin/sessions/{session_id}", A.API, ADMIN),
)

# WebSocket messages, by socket: the socket's own rule admits the role; each
# message then acts only within the scope named here, checked by the service.
AGENT_SCOPE = "a call offered to or answered by this agent (telephony.dispatcher)"
SUPERVISOR_SCOPE = "a live call of a supervised client (telephony.supervision)"
SOCKET_MESSAGES: dict[str, dict[str, tuple[frozenset[Role], str]]] = {
    "/ws/agent": {
        "set_state": (AGENT, "the agent's own state, within their shifts"),
        "rtc_offer": (AGENT, AGENT_SCOPE),
        "answer": (AGENT, AGENT_SCOPE),
        "decline": (AGENT, AGENT_SCOPE),
        "hangup": (AGENT, AGENT_SCOPE),
        "hold": (AGENT, AGENT_SCOPE),
        "mute": (AGENT, AGENT_SCOPE),
        "dtmf": (AGENT, AGENT_SCOPE),
        "record": (AGENT, AGENT_SCOPE + ", where the client records on demand"),
        "ping": (AGENT, "none"),
    },
    "/ws/supervisor": {
        "join": (SUPERVISOR, SUPERVISOR_SCOPE + " that allows live listening"),
        "mode": (SUPERVISOR, "a call this supervisor joined"),
        "leave": (SUPERVISOR, "a call this supervisor joined"),
        "record": (SUPERVISOR, SUPERVISOR_SCOPE + " that records on demand"),
        "ping": (SUPERVISOR, "none"),
    },
}


def rule_for(method: str, canonical: str) -> Rule | None:
    """The row for a route (HEAD is GET's)."""
    method = "GET" if method == "HEAD" else method
    return next((r for r in ROUTES if r.method == method and r.path == canonical), None)
