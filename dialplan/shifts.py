"""Who is on shift, for which clients, and what an agent may do about it.

Pure: the tenant's booked slots and an instant in, facts and plain-words
explanations out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dialplan.tenant import Agent, Shift, Tenant

UPCOMING_DAYS = 7


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    clients: frozenset[str]

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


@dataclass(frozen=True)
class ShiftStatus:
    on_shift: bool
    # Clients the agent may be offered calls for right now.
    clients: frozenset[str]
    current: Slot | None
    next_start: datetime | None
    why_not: str | None


def _shift_clients(agent: Agent, shift: Shift) -> frozenset[str]:
    served = {s.client_id for s in agent.serves}
    return frozenset(served & shift.clients) if shift.clients else frozenset(served)


def _agent_shifts(tenant: Tenant, login: str) -> tuple[Shift, ...]:
    return tenant.shifts_by_agent.get(login, ())


def current_slots(tenant: Tenant, login: str, now: datetime) -> list[Slot]:
    agent = tenant.agents.get(login)
    if agent is None:
        return []
    slots = []
    for shift in _agent_shifts(tenant, login):
        occurrence = shift.calendar.occurrence_at(now)
        if occurrence is not None:
            slots.append(Slot(occurrence.start, occurrence.end, _shift_clients(agent, shift)))
    return slots


def upcoming_slots(tenant: Tenant, login: str, now: datetime, days: int = UPCOMING_DAYS) -> list[Slot]:
    """The slots running now or starting within `days`, in order."""
    agent = tenant.agents.get(login)
    if agent is None:
        return []
    until = now + timedelta(days=days)
    slots: list[Slot] = []
    for shift in _agent_shifts(tenant, login):
        clients = _shift_clients(agent, shift)
        for interval in shift.calendar.intervals(now, until):
            slots.append(Slot(interval.start, interval.end, clients))
    return sorted(slots, key=lambda s: (s.start, s.end))


def _local(instant: datetime, zone: ZoneInfo | None) -> str:
    local = instant.astimezone(zone) if zone is not None else instant
    return local.strftime("%a %d %b %H:%M")


def shift_status(tenant: Tenant, login: str, now: datetime, zone: ZoneInfo | None = None) -> ShiftStatus:
    """Whether `login` is on shift now, for which clients, and if not, why and until when.

    `zone` is the zone the explanation's times are written in (the agent's
    browser tells us nothing reliable; the caller chooses).
    """
    if login not in tenant.agents:
        return ShiftStatus(False, frozenset(), None, None, "You are not an agent of this tenant.")
    running = current_slots(tenant, login, now)
    if running:
        # Several slots may overlap (one per client group): the agent serves
        # every client of every running slot, until the earliest end.
        clients = frozenset().union(*(slot.clients for slot in running))
        current = Slot(min(s.start for s in running), min(s.end for s in running), clients)
        return ShiftStatus(True, clients, current, None, None)
    starts = [start for shift in _agent_shifts(tenant, login) if (start := shift.calendar.next_start(now)) is not None]
    next_start = min(starts) if starts else None
    if next_start is None:
        why = "You have no booked slot. Book one to take calls."
    else:
        why = f"You are not on shift. Your next slot starts {_local(next_start, zone)}."
    return ShiftStatus(False, frozenset(), None, next_start, why)


def may_take(tenant: Tenant, login: str, client_id: str, now: datetime) -> bool:
    """On a running slot that covers `client_id`, and serving that client."""
    agent = tenant.agents.get(login)
    if agent is None or agent.level_for(client_id) is None:
        return False
    return any(client_id in slot.clients for slot in current_slots(tenant, login, now))
