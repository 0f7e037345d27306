"""Recordings over HTTP: the list, the audio itself, and who accessed it.

Every request for the audio is checked (`dialplan.recording_access`) and
audited, granted or refused, and the audit row is committed before the
answer goes out. A browser's <audio> element asks for ranges, so one
playback may be several audited requests, each naming its range.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import structlog
from aiohttp import web

from agent_client.web_app import json_response, principal_of, query_date
from agent_client.web_auth import Principal, Role
from dialplan.clock import iso_z
from dialplan.recording_access import refusal
from store.recordings import Recording, RecordingAccess
from telephony.call_recordings import CallRecordings

log = structlog.get_logger("agent_client.recordings")

RECORDINGS = web.AppKey("recordings", CallRecordings)
MAX_DAYS = 92


def _view(recording: Recording) -> dict[str, object]:
    return {
        "call_id": recording.call_id,
        "client": recording.client_id,
        "media_type": recording.media_type,
        "duration_s": round(recording.duration_ms / 1000, 1),
        "size": recording.size,
        "started_by": recording.started_by,
        "stored_at": iso_z(recording.stored_at),
        "expires_at": iso_z(recording.expires_at),
        "purged": recording.purged_at is not None,
        "url": f"/api/recordings/{recording.call_id}",
    }


async def list_recordings(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    if principal.role is Role.AGENT:
        return json_response({"error": "Agents do not play recordings."}, 403)
    service = request.app[RECORDINGS]
    today = datetime.now(UTC).date()
    first = query_date(request, "from", today - timedelta(days=6))
    last = query_date(request, "to", today)
    if last < first or (last - first).days > MAX_DAYS:
        return json_response({"error": f"at most {MAX_DAYS} days, to not before from", "field": "to"}, 400)
    found = await service.store.listed(
        since=datetime.combine(first, time(), UTC),
        until=datetime.combine(last + timedelta(days=1), time(), UTC),
        client_ids=principal.clients,
    )
    playable = [r for r in found if _refusal(request, principal, r.client_id) is None]
    return json_response({"recordings": [_view(r) for r in playable]})


def _refusal(request: web.Request, principal: Principal, client_id: str | None) -> str | None:
    tenant = request.app[RECORDINGS].tenant
    client = tenant.clients.get(client_id) if client_id is not None else None
    return refusal(principal.role.value, principal.clients, client)


async def play(request: web.Request) -> web.StreamResponse:
    principal = await principal_of(request)
    service = request.app[RECORDINGS]
    call_id = request.match_info["call_id"]
    recording = await service.store.get(call_id)
    client_id = recording.client_id if recording is not None else None
    status, why = 200, None
    if recording is None:
        status, why = 404, "no such recording"
    elif (why := _refusal(request, principal, client_id)) is not None:
        status = 403
    elif recording.purged_at is not None:
        status, why = 410, f"purged on {recording.purged_at.date().isoformat()}, after its retention"
    granted = why is None
    detail = why if why is not None else request.headers.get("Range", "whole file")
    access = RecordingAccess(call_id, client_id, principal.login, principal.role.value, _now(), granted, detail)
    await service.store.audit(access)
    log.info("recording_access", call_id=call_id, actor=principal.login, granted=granted, detail=detail)
    if recording is None or why is not None:
        return json_response({"error": why}, status)
    path = service.path(recording)
    if not path.is_file():
        log.error("recording_file_missing", call_id=call_id, file=recording.file)
        return json_response({"error": "the recording's file is missing; the operators have been told"}, 404)
    return web.FileResponse(
        path,
        headers={
            "Content-Type": recording.media_type,
            "Cache-Control": "no-store",
            "Content-Disposition": f'inline; filename="{call_id}.ogg"',
        },
    )


async def accesses(request: web.Request) -> web.Response:
    """A recording's audit, for whoever may play it."""
    principal = await principal_of(request)
    service = request.app[RECORDINGS]
    call_id = request.match_info["call_id"]
    recording = await service.store.get(call_id)
    if recording is None:
        return json_response({"error": "no such recording"}, 404)
    why = _refusal(request, principal, recording.client_id)
    if why is not None:
        return json_response({"error": why}, 403)
    audit = await service.store.accesses(call_id=call_id)
    return json_response(
        {
            "call_id": call_id,
            "accesses": [
                {"actor": a.actor, "role": a.role, "at": iso_z(a.at), "granted": a.granted, "detail": a.detail}
                for a in audit
            ],
        }
    )


def _now() -> datetime:
    return datetime.now(UTC)


def add_recording_routes(app: web.Application, recordings: CallRecordings) -> None:
    app[RECORDINGS] = recordings
    app.router.add_get("/api/recordings", list_recordings)
    app.router.add_get("/api/recordings/{call_id}", play)
    app.router.add_get("/api/recordings/{call_id}/access", accesses)
