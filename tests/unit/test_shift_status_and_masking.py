"""Who gets offered a waiting call, and what an agent's shift allows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from dialplan.offers import mask_number
from dialplan.schedule import DatedSpan, WeeklyCalendar, WeeklySpan
from dialplan.shifts import may_take, shift_status, upcoming_slots
from dialplan.tenant import Agent, Client, Greeting, ServedClient, Shift, Tenant

PARIS = ZoneInfo("Europe/Paris")
UTCZ = ZoneInfo("UTC")
MON_9 = datetime(2026, 11, 23, 9, tzinfo=UTC)


def agent(login: str, *clients: str) -> Agent:
    return Agent(login, login.title(), "$argon2id$x", tuple(ServedClient(c) for c in clients))


def weekdays_8_to_12(login: str, clients: frozenset[str] = frozenset()) -> Shift:
    spans = tuple(WeeklySpan(d, time(8), d, time(12)) for d in range(5))
    return Shift(login, WeeklyCalendar(UTCZ, weekly=spans), clients)


def tenant() -> Tenant:
    clients = {c: Client(c, c.title(), PARIS, Greeting(text="hi")) for c in ("acme", "globex")}
    agents = {
        "alice": agent("alice", "acme", "globex"),
        "bob": agent("bob", "acme"),
        "carol": agent("carol", "globex"),
        "dave": agent("dave", "acme"),
    }
    shifts = (
        weekdays_8_to_12("alice"),
        weekdays_8_to_12("bob"),
        weekdays_8_to_12("carol"),
        # Dave's slot covers globex only, a client he doesn't serve.
        weekdays_8_to_12("dave", frozenset({"globex"})),
    )
    return Tenant("t", "T", clients, (), agents, shifts)


def test_shift_status_explains_when_the_next_slot_starts() -> None:
    t = tenant()
    on = shift_status(t, "alice", MON_9)
    assert on.on_shift
    assert on.clients == {"acme", "globex"}
    assert on.current is not None
    assert on.current.end == datetime(2026, 11, 23, 12, tzinfo=UTC)
    off = shift_status(t, "alice", datetime(2026, 11, 21, 10, tzinfo=UTC), PARIS)  # a Saturday
    assert not off.on_shift
    assert off.next_start == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert off.why_not == "You are not on shift. Your next slot starts Mon 23 Nov 09:00."
    assert shift_status(t, "nobody", MON_9).why_not == "You are not an agent of this tenant."


def test_an_agent_without_any_slot_is_told_to_book_one() -> None:
    t = Tenant("t", "T", tenant().clients, (), {"eve": agent("eve", "acme")}, ())
    assert shift_status(t, "eve", MON_9).why_not == "You have no booked slot. Book one to take calls."


def test_one_slot_may_cover_several_clients_and_dated_slots_count() -> None:
    dated = Shift(
        "bob", WeeklyCalendar(UTCZ, dated=(DatedSpan(datetime(2026, 11, 22, 20), datetime(2026, 11, 22, 23)),))
    )
    t = Tenant("t", "T", tenant().clients, (), tenant().agents, (dated,))
    sunday_21 = datetime(2026, 11, 22, 21, tzinfo=UTC)
    assert may_take(t, "bob", "acme", sunday_21)
    assert not may_take(t, "bob", "globex", sunday_21), "bob doesn't serve globex"
    assert [s.start for s in upcoming_slots(t, "bob", datetime(2026, 11, 22, tzinfo=UTC))] == [
        datetime(2026, 11, 22, 20, tzinfo=UTC)
    ]


def test_upcoming_slots_cover_the_next_week_in_order() -> None:
    slots = upcoming_slots(tenant(), "alice", datetime(2026, 11, 21, tzinfo=UTC))
    assert len(slots) == 5
    assert slots[0].start == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert all(a.start < b.start for a, b in itertools.pairwise(slots))


def test_masking_keeps_the_ends_of_the_number() -> None:
    assert mask_number("0612345678") == "06••••••78"
    assert mask_number("+33 6 12 34 56 78") == "+33 • •• •• •• 78"
    assert mask_number("123") == "•••"


@given(st.text(alphabet="0123456789 +-", max_size=24))
def test_masking_never_reveals_more_than_four_digits(number: str) -> None:
    masked = mask_number(number)
    assert len(masked) == len(number)
    assert sum(ch.isdigit() for ch in masked) <= 4
