"""Admission of an inbound call: which client and line, or which SIP refusal.

Pure: the caller gives the tenant, what is known of the INVITE, and the time.
Digest arithmetic happens in `telephony`; this module only learns whether
credentials were absent, valid (and for which line) or invalid.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from dialplan.overflow import Overflow
from dialplan.tenant import Line, Tenant

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Credentials(Enum):
    ABSENT = "absent"
    VALID = "valid"
    INVALID = "invalid"


@dataclass(frozen=True)
class InboundCall:
    did: str
    source: IPAddress
    credentials: Credentials = Credentials.ABSENT
    # The line whose digest credentials the request carried, when VALID.
    authenticated_line: str | None = None
    # Numbers the call was forwarded from (Diversion, History-Info), the original first.
    diverted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Accept:
    client_id: str
    line_id: str
    queue_id: str


@dataclass(frozen=True)
class Reject:
    status: int
    reason: str
    retry_after_s: int | None = None
    # Set when the number is known and the caller trusted (outside the window):
    # the client sees the calls its line refused.
    client_id: str | None = None
    line_id: str | None = None


@dataclass(frozen=True)
class Challenge:
    """Ask for digest credentials (407 Proxy Authentication Required)."""

    status: int = 407


Decision = Accept | Reject | Challenge


def _is_trusted_anywhere(tenant: Tenant, call: InboundCall) -> bool:
    if call.credentials is Credentials.VALID:
        return True
    return any(line.trusts(call.source) for line in tenant.lines)


def _line_admits(line: Line, call: InboundCall) -> bool:
    if line.trusts(call.source):
        return True
    return call.credentials is Credentials.VALID and call.authenticated_line == line.id


def route_inbound(
    tenant: Tenant, call: InboundCall, now: datetime, overflows: Mapping[str, Overflow] | None = None
) -> Decision:
    """Decide what to do with an INVITE.

    Untrusted parties learn nothing about which DIDs exist: the source is
    judged before the DID is looked up, so a scanner gets the same 403 (or
    the same challenge) for every number it tries.

    A call forwarded from a client's own number (a line whose overflow takes
    forwarded calls) belongs to that line whatever DID it was sent to, and is
    admitted only from that line's PBX addresses. A line with an overflow
    takes calls only while it is active: `overflows` holds each line's
    current state (the client admin's switch, ad-hoc windows), else the
    tenant file's.
    """
    if not _is_trusted_anywhere(tenant, call):
        if call.credentials is Credentials.INVALID:
            return Reject(403, "Forbidden")
        if tenant.lines_by_digest_user:
            return Challenge()
        return Reject(403, "Forbidden")

    forwarded = next((tenant.forwarded_lines[n] for n in call.diverted if n in tenant.forwarded_lines), None)
    line = forwarded or tenant.line_for_did(call.did)
    if line is None:
        return Reject(404, "Not Found")
    if forwarded is not None and not line.trusts(call.source):
        # Forwarded calls come from the client's PBX and nowhere else.
        return Reject(403, "Forbidden")
    if not _line_admits(line, call):
        if line.digest is not None and call.credentials is Credentials.ABSENT:
            return Challenge()
        return Reject(403, "Forbidden")

    if not line.service_window.is_open(now):
        opening = line.service_window.next_opening(now)
        retry_after = None
        if opening is not None:
            retry_after = math.ceil((opening - now).total_seconds())
        return Reject(480, "Temporarily Unavailable", retry_after, line.client_id, line.id)

    overflow = (overflows or {}).get(line.id, line.overflow)
    if overflow is not None and not overflow.active(now):
        # 480 sends the client's PBX back to its own voicemail.
        change = overflow.schedule.next_change(now) if overflow.switched_on else None
        retry_after = math.ceil((change - now).total_seconds()) if change is not None else None
        return Reject(480, "Temporarily Unavailable", retry_after, line.client_id, line.id)

    return Accept(client_id=line.client_id, line_id=line.id, queue_id=tenant.queue_for_line(line).id)
