"""Weekend overflow: when the bridge takes over a client's line.

An overflow belongs to one line. Its windows come from a weekly schedule in
the client's time zone (Friday 18:00 to Monday 08:00), whole-day holidays,
and ad-hoc "take over now until ..." windows. The client admin's switch
suspends them all while off. Pure and clock-injected: the instant is passed
in, nothing here reads a clock.

Wall-clock exactness comes from `dialplan.schedule.WeeklyCalendar`: each
occurrence is converted to UTC on its own, so a window over the night the
clocks change lasts the wall-clock hours it says (an hour less, or more, in
absolute time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from dialplan.schedule import DEFAULT_HORIZON, DatedSpan, Interval, WeeklyCalendar, WeeklySpan, merge_intervals


class WindowState(StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    ENDED = "ended"


class EndPolicy(StrEnum):
    """What happens to callers still waiting in our queue when a window ends."""

    # Served to the end by our agents (the default).
    SERVE = "serve"
    # Sent back to the client's own number.
    RETURN = "return"


class Takeover(StrEnum):
    """How calls for the line reach the bridge during a window."""

    # The bridge REGISTERs with the client's registrar as the line.
    REGISTRATION = "registration"
    # The client's PBX forwards calls to a bridge number (Diversion / History-Info).
    FORWARDED = "forwarded"


@dataclass(frozen=True)
class Window:
    interval: Interval
    # weekly | holiday | adhoc
    source: str

    def state(self, now: datetime) -> WindowState:
        if now < self.interval.start:
            return WindowState.SCHEDULED
        return WindowState.ACTIVE if now < self.interval.end else WindowState.ENDED


@dataclass(frozen=True)
class OverflowSchedule:
    timezone: ZoneInfo
    weekly: tuple[WeeklySpan, ...] = ()
    holidays: frozenset[date] = frozenset()
    # Ad-hoc windows, in UTC: "take over now until ...".
    adhoc: tuple[Interval, ...] = ()

    def calendar(self) -> WeeklyCalendar:
        return WeeklyCalendar(self.timezone, weekly=self.weekly, dated=self._holiday_spans())

    def _holiday_spans(self) -> tuple[DatedSpan, ...]:
        # Holidays are whole local days the bridge takes over (not days off, as in service windows).
        return tuple(
            DatedSpan(datetime.combine(day, time()), datetime.combine(day + timedelta(days=1), time()))
            for day in sorted(self.holidays)
        )

    def windows(self, start: datetime, end: datetime) -> list[Window]:
        """Every window overlapping [start, end), in order; overlapping ones are listed by source."""
        weekly = WeeklyCalendar(self.timezone, weekly=self.weekly).intervals(start, end)
        holidays = WeeklyCalendar(self.timezone, dated=self._holiday_spans()).intervals(start, end)
        found = [Window(iv, "weekly") for iv in weekly] + [Window(iv, "holiday") for iv in holidays]
        found += [Window(iv, "adhoc") for iv in self.adhoc if iv.end > start and iv.start < end]
        return sorted(found, key=lambda w: (w.interval.start, w.interval.end))

    def covers(self, now: datetime) -> bool:
        return any(iv.contains(now) for iv in self.adhoc) or self.calendar().contains(now)

    def next_change(self, now: datetime, horizon: timedelta = DEFAULT_HORIZON) -> datetime | None:
        """The next instant after `now` at which `covers` changes."""
        merged = merge_intervals(
            self.calendar().intervals(now - timedelta(days=1), now + horizon)
            + [iv for iv in self.adhoc if iv.end > now]
        )
        for iv in merged:
            if iv.start > now:
                return iv.start
            if iv.end > now:
                return iv.end
        return None


@dataclass(frozen=True)
class Registrar:
    """Where and as whom the bridge registers for a registration takeover."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    realm: str | None = None
    expires_s: int = 300

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{host}:{self.port}"

    @property
    def aor(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{self.username}@{host}"


@dataclass(frozen=True)
class Overflow:
    """A line's overflow: its schedule, the client admin's switch, and what ends a window does."""

    line_id: str
    schedule: OverflowSchedule
    takeover: Takeover
    switched_on: bool = True
    end_policy: EndPolicy = EndPolicy.SERVE
    # For forwarded calls: the client's own number, as the PBX puts it in Diversion / History-Info.
    numbers: tuple[str, ...] = field(default_factory=tuple)
    # For a registration takeover.
    registrar: Registrar | None = None
    # Where callers still waiting when a window ends go, with end_policy = return.
    return_to: str | None = None

    @property
    def return_target(self) -> str | None:
        """The client's own line: `return_to`, else the registered line's address of record."""
        if self.return_to is not None:
            return self.return_to
        return self.registrar.aor if self.registrar is not None else None

    def active(self, now: datetime) -> bool:
        return self.switched_on and self.schedule.covers(now)

    def switch(self, on: bool) -> Overflow:
        return replace(self, switched_on=on)

    def take_over_until(self, now: datetime, until: datetime) -> Overflow:
        """An ad-hoc window from now; ended ad-hoc windows are dropped."""
        if until <= now:
            raise ValueError(f"'until' ({until.isoformat()}) must be after now ({now.isoformat()})")
        kept = tuple(iv for iv in self.schedule.adhoc if iv.end > now)
        return replace(self, schedule=replace(self.schedule, adhoc=(*kept, Interval(now, until))))

    def upcoming(self, now: datetime, days: int = 14) -> Iterator[Window]:
        """The windows running now or starting within `days`."""
        yield from self.schedule.windows(now, now + timedelta(days=days))


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_day_time(text: str, *, end: bool = False) -> tuple[int, time]:
    """'fri 18:00' -> (4, 18:00); an end may say '24:00' (midnight at the end of that day)."""
    parts = text.strip().lower().split()
    if len(parts) != 2 or parts[0] not in _DAYS:
        raise ValueError(f"expected a day and a time such as 'fri 18:00', got {text!r}")
    day = _DAYS.index(parts[0])
    hours, sep, minutes = parts[1].partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"expected a time such as 18:00 in {text!r}")
    h, m = int(hours), int(minutes)
    if end and (h, m) == (24, 0):
        return (day + 1) % 7, time(0)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"no such time of day in {text!r}")
    return day, time(h, m)


def span_from_text(start: str, end: str) -> WeeklySpan:
    first, last = parse_day_time(start), parse_day_time(end, end=True)
    return WeeklySpan(first[0], first[1], last[0], last[1])


def span_to_text(span: WeeklySpan) -> dict[str, str]:
    return {
        "from": f"{_DAYS[span.start_day]} {span.start.strftime('%H:%M')}",
        "to": f"{_DAYS[span.end_day]} {span.end.strftime('%H:%M')}",
    }
