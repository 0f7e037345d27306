"""The bridge's whole web app: every route of every part, as the control process serves it.

One place builds it, so that the process and the tests that check every
route (tests/web/test_rbac_matrix.py, tests/web/test_api_fuzz.py) serve
the same routes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_client.web_admin import add_admin_routes
from agent_client.web_agent import AgentDesk, add_agent_routes
from agent_client.web_app import Probe, WebContext, create_app
from agent_client.web_auth import Authenticator
from agent_client.web_edge import Edge
from agent_client.web_openapi import add_openapi_route
from agent_client.web_overflow import add_overflow_routes
from agent_client.web_pay import add_pay_routes
from agent_client.web_recordings import add_recording_routes
from agent_client.web_reports import add_report_routes
from agent_client.web_sessions import SessionStore
from agent_client.web_supervisor import SupervisorDesk, add_supervisor_routes
from dialplan.tenant import Tenant
from store.records import CallRecords
from telephony.call_recordings import CallRecordings
from telephony.overflow_control import OverflowControl


def bridge_app(
    *,
    tenant: Tenant,
    records: CallRecords,
    health: Probe,
    workers: Probe,
    desk: AgentDesk | Any,
    supervision: SupervisorDesk | Any,
    overflow: OverflowControl,
    recordings: CallRecordings,
    sessions: SessionStore,
    edge: Edge,
    authenticator: Authenticator | None = None,
) -> web.Application:
    authenticator = authenticator or Authenticator(tenant)
    app = create_app(WebContext(records, authenticator, health, workers), edge)
    add_agent_routes(app, sessions=sessions, authenticator=authenticator, desk=desk)
    add_supervisor_routes(app, supervision=supervision)
    add_overflow_routes(app, overflow)
    add_pay_routes(app, tenant)
    add_report_routes(app, tenant)
    add_recording_routes(app, recordings)
    add_admin_routes(app)
    add_openapi_route(app)
    return app
