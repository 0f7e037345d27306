"""Each line's weekend overflow as it stands now: the tenant file's, changed by its client admin.

The client admin's page and the REST API both come here, so they behave
identically. Every change is saved with its audit (who, when, old and new)
before it is acknowledged; admission (`route_inbound`) reads the result at
the next INVITE, and `watchers` hear of it at once (a registration takeover
registers or unregisters within the 2 s the client admin is promised).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import structlog

from dialplan.clock import Clock, iso_z
from dialplan.overflow import EndPolicy, Overflow, span_from_text, span_to_text
from dialplan.schedule import Interval
from dialplan.tenant import Line, Tenant
from store.overflow_settings import OverflowChange, OverflowSettings, SavedOverflow

log = structlog.get_logger("telephony.overflow")

# How far ahead the page lists a line's windows.
UPCOMING_DAYS = 14
# A holiday list longer than this is a mistake, not a calendar.
MAX_HOLIDAYS = 200
MAX_SPANS = 50


class OverflowRefused(ValueError):
    """A change the client admin can't make; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Registration:
    """A registration takeover's live status, as the page shows it."""

    registered: bool = False
    since: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


class OverflowControl:
    def __init__(self, *, tenant: Tenant, store: OverflowSettings, clock: Clock) -> None:
        self.tenant = tenant
        self.store = store
        self.clock = clock
        self._lines = {line.id: line for line in tenant.lines if line.overflow is not None}
        self._overflows: dict[str, Overflow] = {
            line_id: line.overflow for line_id, line in self._lines.items() if line.overflow is not None
        }
        self.registrations: dict[str, Registration] = {
            line_id: Registration() for line_id, o in self._overflows.items() if o.registrar is not None
        }
        self.watchers: list[Callable[[str], None]] = []

    async def start(self) -> None:
        """Apply what client admins saved before this start."""
        for line_id, saved in (await self.store.load()).items():
            overflow = self._overflows.get(line_id)
            if overflow is None:
                log.warning("overflow_settings_without_line", line=line_id)
                continue
            self._overflows[line_id] = _apply(overflow, saved)

    def current(self) -> Mapping[str, Overflow]:
        return dict(self._overflows)

    # ---- what a client admin sees ----------------------------------------------------

    def lines(self, clients: frozenset[str] | None) -> list[Line]:
        """The lines with an overflow of these clients (None: every client)."""
        return [line for line in self._lines.values() if clients is None or line.client_id in clients]

    def line(self, line_id: str, clients: frozenset[str] | None) -> Line:
        """The line, if these clients own it; another client's line is as absent as an unknown one."""
        line = self._lines.get(line_id)
        if line is None or (clients is not None and line.client_id not in clients):
            raise OverflowRefused(f"no overflow line {line_id!r}", 404)
        return line

    def view(self, line: Line) -> dict[str, Any]:
        now = self.clock.now()
        overflow = self._overflows[line.id]
        registration = self.registrations.get(line.id)
        windows = [
            {
                "start": iso_z(w.interval.start),
                "end": iso_z(w.interval.end),
                "source": w.source,
                "state": w.state(now).value,
            }
            for w in overflow.upcoming(now, UPCOMING_DAYS)
        ]
        return {
            "line": line.id,
            "client": line.client_id,
            "takeover": overflow.takeover.value,
            "switched_on": overflow.switched_on,
            "active": overflow.active(now),
            "end_policy": overflow.end_policy.value,
            "timezone": overflow.schedule.timezone.key,
            "weekly": [span_to_text(span) for span in overflow.schedule.weekly],
            "holidays": [day.isoformat() for day in sorted(overflow.schedule.holidays)],
            "takeovers": [
                {"start": iso_z(iv.start), "end": iso_z(iv.end)} for iv in overflow.schedule.adhoc if iv.end > now
            ],
            "windows": windows,
            "registration": None
            if registration is None
            else {
                "registered": registration.registered,
                "since": iso_z(registration.since),
                "last_error": registration.last_error,
                "last_error_at": iso_z(registration.last_error_at),
            },
        }

    # ---- changes ---------------------------------------------------------------------

    async def switch(self, actor: str, line: Line, on: bool) -> Overflow:
        return await self._change(actor, line, "switch", lambda o: o.switch(on))

    async def set_schedule(
        self, actor: str, line: Line, weekly: Sequence[Mapping[str, str]], holidays: Sequence[str]
    ) -> Overflow:
        if len(weekly) > MAX_SPANS or len(holidays) > MAX_HOLIDAYS:
            raise OverflowRefused(f"at most {MAX_SPANS} weekly spans and {MAX_HOLIDAYS} holidays")
        try:
            spans = tuple(span_from_text(str(span["from"]), str(span["to"])) for span in weekly)
            days = frozenset(date.fromisoformat(str(day)) for day in holidays)
        except (KeyError, TypeError, ValueError) as exc:
            raise OverflowRefused(f"schedule: {exc}") from None

        def apply(o: Overflow) -> Overflow:
            return replace(o, schedule=replace(o.schedule, weekly=spans, holidays=days))

        return await self._change(actor, line, "schedule", apply)

    async def take_over_until(self, actor: str, line: Line, until: datetime) -> Overflow:
        now = self.clock.now()
        if until.tzinfo is None:
            raise OverflowRefused("until: give a time zone, such as 2026-11-28T20:00:00+01:00")
        if not now < until <= now + timedelta(days=31):
            raise OverflowRefused("until: a moment in the next 31 days")
        return await self._change(actor, line, "takeover", lambda o: o.take_over_until(now, until))

    async def set_end_policy(self, actor: str, line: Line, policy: str) -> Overflow:
        try:
            chosen = EndPolicy(policy)
        except ValueError:
            raise OverflowRefused(f"end_policy: one of {', '.join(p.value for p in EndPolicy)}") from None
        return await self._change(actor, line, "end_policy", lambda o: replace(o, end_policy=chosen))

    async def _change(self, actor: str, line: Line, change: str, apply: Callable[[Overflow], Overflow]) -> Overflow:
        now = self.clock.now()
        old = self._overflows[line.id]
        new = apply(old)
        await self.store.save(
            SavedOverflow(line.id, new.switched_on, _settings(new), now, actor),
            OverflowChange(line.id, line.client_id, actor, now, change, _audited(old, change), _audited(new, change)),
        )
        self._overflows[line.id] = new
        log.info("overflow_changed", line=line.id, actor=actor, change=change, active=new.active(now))
        for watcher in self.watchers:
            watcher(line.id)
        return new


def _settings(overflow: Overflow) -> dict[str, Any]:
    schedule = overflow.schedule
    return {
        "weekly": [span_to_text(span) for span in schedule.weekly],
        "holidays": [day.isoformat() for day in sorted(schedule.holidays)],
        "adhoc": [[iso_z(iv.start), iso_z(iv.end)] for iv in schedule.adhoc],
        "end_policy": overflow.end_policy.value,
    }


def _audited(overflow: Overflow, change: str) -> dict[str, Any]:
    settings = _settings(overflow)
    if change == "switch":
        return {"switched_on": overflow.switched_on}
    if change == "schedule":
        return {"weekly": settings["weekly"], "holidays": settings["holidays"]}
    if change == "takeover":
        return {"takeovers": settings["adhoc"]}
    return {"end_policy": settings["end_policy"]}


def _apply(overflow: Overflow, saved: SavedOverflow) -> Overflow:
    settings = saved.settings
    schedule = replace(
        overflow.schedule,
        weekly=tuple(span_from_text(s["from"], s["to"]) for s in settings.get("weekly", [])),
        holidays=frozenset(date.fromisoformat(d) for d in settings.get("holidays", [])),
        adhoc=tuple(
            Interval(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in settings.get("adhoc", [])
        ),
    )
    policy = EndPolicy(settings.get("end_policy", overflow.end_policy.value))
    return replace(overflow, schedule=schedule, switched_on=saved.switched_on, end_policy=policy)
