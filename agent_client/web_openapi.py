"""The HTTP API's OpenAPI 3.1 document, written by hand and served at GET /api/openapi.json.

Every /api/ route is here (tests/web/test_openapi.py compares the document
with the app's routes) with its parameters, bodies and answers; the
schemathesis run in tests/web/test_api_fuzz.py holds the handlers to it.
Pages, static files and WebSockets are not (docs/agent-protocol.md and
docs/supervisor-protocol.md describe the sockets).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_client.web_app import json_response

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more: Any) -> Schema:
    return {"type": [kind, "null"], **more}


def _object(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


def _array(items: Schema, **more: Any) -> Schema:
    return {"type": "array", "items": items, **more}


STRING: Schema = {"type": "string"}
DATE: Schema = {"type": "string", "format": "date"}
TIME: Schema = {"type": "string", "format": "date-time"}
INT: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}

SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {"error": STRING},
        {
            "field": {"type": "string", "description": "the parameter or body field at fault"},
            "code": STRING,
            "retry_after_s": INT,
        },
    ),
    "Me": _object(
        {"login": STRING, "name": STRING, "role": {"enum": ["admin", "supervisor", "client_admin", "agent"]}}
    ),
    "Health": _object({"status": {"enum": ["ready", "degraded", "draining"]}}),
    "CallEvent": _object({"kind": STRING, "at": _nullable("string"), "mono": NUMBER, "data": ANY_OBJECT}),
    "CallRecord": _object(
        {
            "id": STRING,
            "sip_call_id": STRING,
            "caller": STRING,
            "caller_display": _nullable("string"),
            "did": STRING,
            "source": STRING,
            "client_id": _nullable("string"),
            "line_id": _nullable("string"),
            "worker": _nullable("integer"),
            "node": STRING,
            "outcome": _nullable("string"),
            "sip_status": _nullable("integer"),
            "ended_by": _nullable("string"),
            "answered_by": _nullable("string"),
            "arrived_at": STRING,
            "ended_at": _nullable("string"),
            "last_alive_at": STRING,
            "arrived_mono": NUMBER,
            "last_mono": NUMBER,
            "event_count": INT,
            "duration_s": _nullable("number"),
            "queue_wait_s": _nullable("number"),
            "talk_s": _nullable("number"),
            "events": _array(_ref("CallEvent")),
        }
    ),
    "ClientRef": _object({"id": STRING, "name": STRING}, {"live_listening": BOOL}),
    "LiveCall": _object(
        {
            "call_id": STRING,
            "client": _ref("ClientRef"),
            "agent": _object({"login": STRING, "name": STRING}),
            "answered_at": _nullable("string"),
            "held": BOOL,
            "recording": {"enum": ["on", "available", "off"]},
        }
    ),
    "Score": _object({"supervisor": STRING, "score": INT, "comment": STRING, "at": _nullable("string")}),
    "WeeklySpan": _object({"from": STRING, "to": STRING}),
    "OverflowLine": _object(
        {
            "line": STRING,
            "client": STRING,
            "takeover": {"enum": ["registration", "forwarded"]},
            "switched_on": BOOL,
            "active": BOOL,
            "end_policy": {"enum": ["serve", "return"]},
            "timezone": STRING,
            "weekly": _array(_ref("WeeklySpan")),
            "holidays": _array(STRING),
            "takeovers": _array(_object({"start": _nullable("string"), "end": _nullable("string")})),
            "windows": _array(ANY_OBJECT),
            "registration": {"type": ["object", "null"]},
        }
    ),
    "OverflowChange": _object(
        {
            "line_id": STRING,
            "client_id": STRING,
            "actor": STRING,
            "at": _nullable("string"),
            "change": STRING,
            "old": ANY_OBJECT,
            "new": ANY_OBJECT,
        }
    ),
    "Statement": _object(
        {
            "agent": STRING,
            "currency": STRING,
            "total": STRING,
            "base": STRING,
            "premiums": STRING,
            "quality_share": STRING,
            "talk_s": NUMBER,
            "rows": _array({"type": "object", "additionalProperties": STRING}),
        }
    ),
    "ReportRow": _object(
        {
            "period": STRING,
            "group": STRING,
            "offered": INT,
            "answered": INT,
            "abandoned": INT,
            "fallback": INT,
            "service_level": _nullable("number"),
            "avg_speed_of_answer_s": _nullable("number"),
            "avg_handle_s": _nullable("number"),
            "staffed_s": _nullable("number"),
            "occupancy": _nullable("number"),
        }
    ),
    "Recording": _object(
        {
            "call_id": STRING,
            "client": _nullable("string"),
            "media_type": STRING,
            "duration_s": NUMBER,
            "size": INT,
            "started_by": STRING,
            "stored_at": _nullable("string"),
            "expires_at": _nullable("string"),
            "purged": BOOL,
            "url": STRING,
        }
    ),
    "RecordingAccess": _object(
        {"actor": STRING, "role": STRING, "at": _nullable("string"), "granted": BOOL, "detail": STRING}
    ),
    "Session": _object(
        {
            "id": {"type": "string", "description": "opaque: not the session's token"},
            "login": STRING,
            "role": STRING,
            "source": STRING,
            "signed_in_at": _nullable("string"),
            "last_seen_at": _nullable("string"),
            "expires_at": _nullable("string"),
        }
    ),
    "Revoked": _object({"revoked": _array(STRING)}),
}

_ERROR_TEXTS = {
    "400": "a bad parameter or body; `field` names it",
    "401": "no or wrong credentials",
    "403": "not for this role, out of scope, or a cross-site request",
    "404": "no such thing, or another client's (they look the same)",
    "405": "method not allowed",
    "409": "not possible in the call's current state",
    "410": "gone (a purged recording)",
    "413": "body too large",
    "429": "too many failed sign-ins from this address or for this login",
}


def _json_content(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _errors(*statuses: str) -> dict[str, Schema]:
    answers: dict[str, Schema] = {}
    for status in statuses:
        answer: Schema = {"description": _ERROR_TEXTS[status], "content": _json_content(_ref("Error"))}
        if status == "429":
            answer["headers"] = {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}}
        if status == "401":
            answer["headers"] = {"WWW-Authenticate": {"schema": STRING}}
        answers[status] = answer
    return answers


def _ok(schema: Schema, description: str = "done") -> dict[str, Schema]:
    return {"200": {"description": description, "content": _json_content(schema)}}


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _body(schema: Schema) -> Schema:
    return {"required": True, "content": _json_content(schema)}


# What every signed-in call may also answer: the credentials' and the sign-in throttle's refusals.
SIGNED_IN = ("400", "401", "403", "429")
DAY_RANGE = [
    _query("from", DATE, "first day, UTC (a date such as 2026-11-23)"),
    _query("to", DATE, "last day, UTC"),
]


def _op(summary: str, responses: dict[str, Schema], **more: Any) -> Schema:
    return {"summary": summary, "responses": responses, **more}


PATHS: dict[str, dict[str, Schema]] = {
    "/healthz": {
        "get": _op(
            "readiness of SIP, database and live state (public, for load balancers)",
            {
                "200": {"description": "ready", "content": _json_content(_ref("Health"))},
                "503": {"description": "not ready", "content": _json_content(_ref("Health"))},
            },
            security=[],
        )
    },
    "/api/openapi.json": {
        "get": _op("this document", _ok(ANY_OBJECT, "the OpenAPI document"), security=[]),
    },
    "/api/login": {
        "post": _op(
            "sign in: a session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS)",
            {**_ok(_ref("Me"), "signed in"), **_errors("400", "401", "403", "429")},
            security=[],
            requestBody=_body(
                _object(
                    {
                        "login": {"type": "string", "minLength": 1, "maxLength": 128},
                        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
                    }
                )
            ),
        )
    },
    "/api/logout": {
        "post": _op(
            "end this browser's session",
            {"204": {"description": "signed out (or was not signed in)"}, **_errors("403")},
            security=[],
        )
    },
    "/api/me": {
        "get": _op(
            "who this browser session is",
            {**_ok(_ref("Me")), **_errors("401")},
            security=[{"session": []}],
        )
    },
    "/api/calls": {
        "get": _op(
            "call records of the caller's clients, newest first",
            {**_ok(_object({"calls": _array(_ref("CallRecord"))})), **_errors(*SIGNED_IN)},
            parameters=[
                _query("since", TIME, "arrived at or after (with a time zone)"),
                _query("until", TIME, "arrived before (with a time zone)"),
                _query("client", STRING, "one client's calls only"),
                _query("outcome", STRING, "answered, abandoned, rejected, ..."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                _query("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000}),
            ],
        )
    },
    "/api/calls/{call_id}": {
        "get": _op(
            "one call record with its timeline",
            {**_ok(_ref("CallRecord")), **_errors(*SIGNED_IN, "404")},
            parameters=[_path("call_id")],
        )
    },
    "/api/workers": {
        "get": _op(
            "the media workers' state and counters (tenant admins)",
            {**_ok(_object({"workers": _array(ANY_OBJECT)})), **_errors(*SIGNED_IN)},
        )
    },
    "/api/supervisor/calls": {
        "get": _op(
            "live calls of the supervised clients",
            {**_ok(_object({"calls": _array(_ref("LiveCall"))})), **_errors(*SIGNED_IN)},
        )
    },
    "/api/supervisor/calls/{call_id}": {
        "get": _op(
            "one live call, if the supervisor may step into it",
            {**_ok(_ref("LiveCall")), **_errors(*SIGNED_IN, "404")},
            parameters=[_path("call_id")],
        )
    },
    "/api/supervisor/calls/{call_id}/score": {
        "post": _op(
            "score a call of a supervised client, 1 to 5",
            {
                **_ok(_object({"call_id": STRING, "scores": _array(_ref("Score"))})),
                **_errors(*SIGNED_IN, "404"),
            },
            parameters=[_path("call_id")],
            requestBody=_body(
                _object(
                    {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
                    {"comment": {"type": "string", "maxLength": 2000}},
                )
            ),
        )
    },
    "/api/supervisor/calls/{call_id}/record": {
        "post": _op(
            "start recording a live call whose client records on demand",
            {
                **_ok(_object({"call_id": STRING, "recording": {"const": "on"}})),
                **_errors(*SIGNED_IN, "404", "409"),
            },
            parameters=[_path("call_id")],
        )
    },
    "/api/overflow/lines": {
        "get": _op(
            "the caller's clients' overflow lines",
            {**_ok(_object({"lines": _array(_ref("OverflowLine"))})), **_errors(*SIGNED_IN)},
        )
    },
    "/api/overflow/lines/{line}": {
        "get": _op(
            "one overflow line",
            {**_ok(_ref("OverflowLine")), **_errors(*SIGNED_IN, "404")},
            parameters=[_path("line")],
        )
    },
    "/api/overflow/lines/{line}/switch": {
        "post": _op(
            "switch the line's overflow on or off",
            {**_ok(_ref("OverflowLine")), **_errors(*SIGNED_IN, "404")},
            parameters=[_path("line")],
            requestBody=_body(_object({"on": BOOL})),
        )
    },
    "/api/overflow/lines/{line}/schedule": {
        "put": _op(
            "replace the line's weekly windows and holidays",
            {**_ok(_ref("OverflowLine")), **_errors(*SIGNED_IN, "404")},
            parameters=[_path("line")],
            requestBody=_body(
                {
                    "type": "object",
                    "properties": {
                        "weekly": _array(_ref("WeeklySpan"), maxItems=50),
                        "holidays": _array(DATE, maxItems=400),
                    },
                }
            ),
        )
    },
    "/api/overflow/lines/{line}/takeover": {
        "post": _op(
            "take the line over now, until a moment in the next 31 days",
            {**_ok(_ref("OverflowLine")), **_errors(*SIGNED_IN, "404")},
            parameters=[_path("line")],
            requestBody=_body(_object({"until": TIME})),
        )
    },
    "/api/overflow/lines/{line}/end_policy": {
        "put": _op(
            "what happens to waiting callers when a window ends",
            {**_ok(_ref("OverflowLine")), **_errors(*SIGNED_IN, "404")},
            parameters=[_path("line")],
            requestBody=_body(_object({"end_policy": {"enum": ["serve", "return"]}})),
        )
    },
    "/api/overflow/audit": {
        "get": _op(
            "changes to the caller's clients' lines, newest first",
            {**_ok(_object({"changes": _array(_ref("OverflowChange"))})), **_errors(*SIGNED_IN)},
        )
    },
    "/api/pay/statement": {
        "get": _op(
            "an agent's pay statement: their own, or anyone's for a tenant admin",
            {
                "200": {
                    "description": "the statement",
                    "content": {
                        "application/json": {
                            "schema": _object({"from": DATE, "to": DATE, "statements": _array(_ref("Statement"))})
                        },
                        "text/csv": {"schema": STRING},
                        "text/html": {"schema": STRING},
                    },
                },
                **_errors(*SIGNED_IN, "404"),
            },
            parameters=[
                _query("agent", STRING, "whose (default: the caller)"),
                *DAY_RANGE,
                _query("format", {"enum": ["json", "csv", "html"]}),
            ],
        )
    },
    "/api/reports": {
        "get": _op(
            "figures per client, queue or agent, by day or hour",
            {
                "200": {
                    "description": "the report",
                    "content": {
                        "application/json": {
                            "schema": _object(
                                {
                                    "group": STRING,
                                    "by": STRING,
                                    "from": DATE,
                                    "to": DATE,
                                    "rows": _array(_ref("ReportRow")),
                                }
                            )
                        },
                        "text/csv": {"schema": STRING},
                    },
                },
                **_errors(*SIGNED_IN),
            },
            parameters=[
                _query("group", {"enum": ["client", "queue", "agent"]}),
                _query("by", {"enum": ["day", "hour"]}),
                *DAY_RANGE,
                _query("client", STRING, "one client only"),
                _query("threshold_s", {"type": "number", "exclusiveMinimum": 0, "maximum": 3600}),
                _query("format", {"enum": ["json", "csv"]}),
            ],
        )
    },
    "/api/recordings": {
        "get": _op(
            "recordings the caller may play",
            {**_ok(_object({"recordings": _array(_ref("Recording"))})), **_errors(*SIGNED_IN)},
            parameters=DAY_RANGE,
        )
    },
    "/api/recordings/{call_id}": {
        "get": _op(
            "a recording's audio (ranges allowed); every request is audited",
            {
                "200": {"description": "the audio", "content": {"audio/ogg": {"schema": STRING}}},
                "206": {"description": "part of it", "content": {"audio/ogg": {"schema": STRING}}},
                **_errors(*SIGNED_IN, "404", "410"),
            },
            parameters=[_path("call_id")],
        )
    },
    "/api/recordings/{call_id}/access": {
        "get": _op(
            "who played a recording, or was refused",
            {
                **_ok(_object({"call_id": STRING, "accesses": _array(_ref("RecordingAccess"))})),
                **_errors(*SIGNED_IN, "404"),
            },
            parameters=[_path("call_id")],
        )
    },
    "/api/admin/sessions": {
        "get": _op(
            "live browser sessions (tenant admins)",
            {**_ok(_object({"sessions": _array(_ref("Session"))})), **_errors(*SIGNED_IN)},
            parameters=[_query("login", STRING, "one login's only")],
        ),
        "delete": _op(
            "end every session of a login; their pages' sockets close",
            {**_ok(_ref("Revoked")), **_errors(*SIGNED_IN)},
            parameters=[
                {"name": "login", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}}
            ],
        ),
    },
    "/api/admin/sessions/{session_id}": {
        "delete": _op(
            "end one session; its pages' sockets close",
            {**_ok(_ref("Revoked")), **_errors(*SIGNED_IN, "404")},
            parameters=[_path("session_id")],
        )
    },
}

DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "hotline-bridge",
        "version": "1",
        "description": (
            "The bridge's HTTP API. Scripts sign in with HTTP Basic; browser pages with the session cookie "
            "from POST /api/login, and their POST, PUT and DELETE requests must come from the bridge's own "
            "origin (Origin or Referer). Failed sign-ins are throttled (429 with Retry-After). Every 400 "
            "names the field at fault."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"basic": []}, {"session": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "session": {"type": "apiKey", "in": "cookie", "name": "hotline_session"},
        },
    },
}


async def openapi(request: web.Request) -> web.Response:
    return json_response(DOCUMENT)


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)
