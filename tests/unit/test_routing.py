"""Admission decisions: who may call which DID, and when."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from dialplan.routing import Accept, Challenge, Credentials, InboundCall, Reject, route_inbound
from dialplan.schedule import ServiceWindow, WeeklyCalendar, WeeklySpan
from dialplan.tenant import Client, DigestCredentials, Greeting, Line, Tenant

PARIS = ZoneInfo("Europe/Paris")
LOCAL = ipaddress.ip_address("127.0.0.1")
STRANGER = ipaddress.ip_address("127.0.0.99")
MONDAY_10 = datetime(2026, 11, 23, 9, tzinfo=UTC)
SATURDAY_10 = datetime(2026, 11, 21, 9, tzinfo=UTC)


def tenant(*, digest: bool = False) -> Tenant:
    hours = ServiceWindow(WeeklyCalendar(PARIS, weekly=tuple(WeeklySpan(d, time(8), d, time(18)) for d in range(5))))
    lines = [
        Line("acme-main", "acme", ("1001",), (ipaddress.ip_network("127.0.0.1/32"),)),
        Line("acme-office", "acme", ("1003",), (ipaddress.ip_network("127.0.0.1/32"),), service_window=hours),
        Line("globex-main", "globex", ("1002",), (ipaddress.ip_network("127.0.0.2/32"),)),
    ]
    if digest:
        lines.append(Line("pbx", "globex", ("2002",), (), DigestCredentials("pbx", "hotline", "0" * 32)))
    clients = {c: Client(c, c.title(), PARIS, Greeting(text="hello")) for c in ("acme", "globex")}
    return Tenant("t", "T", clients, tuple(lines))


def test_known_did_from_trunk_is_accepted_into_the_clients_queue() -> None:
    decision = route_inbound(tenant(), InboundCall("1001", LOCAL), MONDAY_10)
    assert decision == Accept(client_id="acme", line_id="acme-main", queue_id="acme")


def test_unknown_did_from_a_trusted_source_is_404() -> None:
    assert route_inbound(tenant(), InboundCall("9999", LOCAL), MONDAY_10) == Reject(404, "Not Found")


def test_untrusted_source_gets_403_whatever_the_did() -> None:
    for did in ("1001", "9999"):
        assert route_inbound(tenant(), InboundCall(did, STRANGER), MONDAY_10) == Reject(403, "Forbidden")


def test_trunk_of_another_line_is_forbidden() -> None:
    assert route_inbound(tenant(), InboundCall("1002", LOCAL), MONDAY_10) == Reject(403, "Forbidden")


def test_outside_the_window_is_480_with_seconds_until_opening() -> None:
    decision = route_inbound(tenant(), InboundCall("1003", LOCAL), SATURDAY_10)
    # Saturday 10:00 Paris -> Monday 08:00 Paris is 46 hours.
    assert decision == Reject(480, "Temporarily Unavailable", 46 * 3600, "acme", "acme-office")


def test_untrusted_source_is_challenged_when_digest_lines_exist() -> None:
    assert isinstance(route_inbound(tenant(digest=True), InboundCall("2002", STRANGER), MONDAY_10), Challenge)
    # Same answer for a DID that does not exist: nothing to enumerate.
    assert isinstance(route_inbound(tenant(digest=True), InboundCall("9999", STRANGER), MONDAY_10), Challenge)


def test_valid_credentials_admit_only_their_own_line() -> None:
    t = tenant(digest=True)
    ok = InboundCall("2002", STRANGER, Credentials.VALID, "pbx")
    assert route_inbound(t, ok, MONDAY_10) == Accept("globex", "pbx", "globex")
    other = InboundCall("1001", STRANGER, Credentials.VALID, "pbx")
    assert route_inbound(t, other, MONDAY_10) == Reject(403, "Forbidden")


def test_invalid_credentials_are_refused_without_a_new_challenge() -> None:
    call = InboundCall("2002", STRANGER, Credentials.INVALID)
    assert route_inbound(tenant(digest=True), call, MONDAY_10) == Reject(403, "Forbidden")


def test_a_trunk_calling_a_digest_line_is_asked_for_credentials() -> None:
    assert isinstance(route_inbound(tenant(digest=True), InboundCall("2002", LOCAL), MONDAY_10), Challenge)
    invalid = InboundCall("2002", LOCAL, Credentials.INVALID)
    assert route_inbound(tenant(digest=True), invalid, MONDAY_10) == Reject(403, "Forbidden")


def overflow_tenant() -> Tenant:
    """Globex's PBX (127.0.0.2) forwards to bridge DID 5000 at weekends; 127.0.0.1 is another trunk."""
    from dialplan.overflow import Overflow, OverflowSchedule, Takeover

    weekend = OverflowSchedule(PARIS, weekly=(WeeklySpan(4, time(18), 0, time(8)),))
    forwarded = Overflow("globex-fwd", weekend, Takeover.FORWARDED, numbers=("+33140000000",))
    base = tenant()
    pbx = Line("globex-fwd", "globex", ("5000",), (ipaddress.ip_network("127.0.0.2/32"),), overflow=forwarded)
    return Tenant("t", "T", base.clients, (*base.lines, pbx))


PBX = ipaddress.ip_address("127.0.0.2")


def test_a_forwarded_call_is_taken_in_window_and_refused_with_480_outside() -> None:
    t = overflow_tenant()
    call = InboundCall("5000", PBX, diverted=("+33140000000",))
    assert route_inbound(t, call, SATURDAY_10) == Accept("globex", "globex-fwd", "globex")
    # Monday 10:00: the PBX's own voicemail takes it; retry when the window opens (Friday 18:00).
    assert route_inbound(t, call, MONDAY_10) == Reject(
        480, "Temporarily Unavailable", 104 * 3600, "globex", "globex-fwd"
    )


def test_a_forwarded_call_is_recognised_by_the_diverted_number_whatever_the_did() -> None:
    t = overflow_tenant()
    assert route_inbound(t, InboundCall("1002", PBX, diverted=("0600", "+33140000000")), SATURDAY_10) == Accept(
        "globex", "globex-fwd", "globex"
    )


def test_a_forwarded_call_from_anywhere_but_the_client_s_pbx_is_403() -> None:
    t = overflow_tenant()
    # 127.0.0.1 is a trusted trunk (acme's), but not globex's PBX.
    assert route_inbound(t, InboundCall("5000", LOCAL, diverted=("+33140000000",)), SATURDAY_10) == Reject(
        403, "Forbidden"
    )
    assert route_inbound(t, InboundCall("5000", STRANGER, diverted=("+33140000000",)), SATURDAY_10) == Reject(
        403, "Forbidden"
    )


def test_the_client_admin_s_switch_and_takeovers_decide_over_the_tenant_file() -> None:
    t = overflow_tenant()
    line = next(li for li in t.lines if li.id == "globex-fwd")
    assert line.overflow is not None
    call = InboundCall("5000", PBX, diverted=("+33140000000",))
    off = {"globex-fwd": line.overflow.switch(False)}
    assert route_inbound(t, call, SATURDAY_10, off) == Reject(
        480, "Temporarily Unavailable", None, "globex", "globex-fwd"
    )
    now_until_noon = {"globex-fwd": line.overflow.take_over_until(MONDAY_10, MONDAY_10.replace(hour=11))}
    assert route_inbound(t, call, MONDAY_10, now_until_noon) == Accept("globex", "globex-fwd", "globex")
