"""Wall-clock calendars in a client's time zone: service windows and shifts.

Spans are written in local wall-clock time and converted to UTC one
occurrence at a time, so a span over a DST change keeps the wall-clock
hours it says (Friday 18:00 to Monday 08:00 stays exactly that, and is an
hour shorter or longer in absolute time). A local time that does not exist
(the spring-forward gap) resolves forward, one that exists twice (fall
back) resolves to its first occurrence: that is zoneinfo's `fold=0`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# How far ahead `next_start` looks. A weekly calendar repeats within 8 days;
# dated spans and holidays can push the next opening further.
DEFAULT_HORIZON = timedelta(days=400)


@dataclass(frozen=True)
class Interval:
    """A half-open UTC interval [start, end)."""

    start: datetime
    end: datetime

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class WeeklySpan:
    """From `start_day start` to the following `end_day end`, every week.

    Days are 0 (Monday) to 6 (Sunday). An end at or before the start on the
    same day means the span wraps a whole week.
    """

    start_day: int
    start: time
    end_day: int
    end: time

    def length_days(self) -> int:
        days = (self.end_day - self.start_day) % 7
        if days == 0 and self.end <= self.start:
            days = 7
        return days


@dataclass(frozen=True)
class DatedSpan:
    """One span between two naive local datetimes."""

    start: datetime
    end: datetime


def _to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return _to_utc(datetime.combine(day, time()), zone)


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: i.start):
        if iv.end <= iv.start:
            continue
        if merged and iv.start <= merged[-1].end:
            if iv.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, iv.end)
        else:
            merged.append(iv)
    return merged


def _subtract(intervals: list[Interval], holes: list[Interval]) -> list[Interval]:
    result = intervals
    for hole in holes:
        cut: list[Interval] = []
        for iv in result:
            if hole.end <= iv.start or hole.start >= iv.end:
                cut.append(iv)
                continue
            if iv.start < hole.start:
                cut.append(Interval(iv.start, hole.start))
            if hole.end < iv.end:
                cut.append(Interval(hole.end, iv.end))
        result = cut
    return result


@dataclass(frozen=True)
class WeeklyCalendar:
    """Weekly spans and dated spans in one zone, minus whole-day holidays."""

    timezone: ZoneInfo
    weekly: tuple[WeeklySpan, ...] = ()
    dated: tuple[DatedSpan, ...] = ()
    holidays: frozenset[date] = frozenset()

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """Merged UTC intervals that overlap [start, end), unclipped."""
        zone = self.timezone
        first = start.astimezone(zone).date() - timedelta(days=8)
        last = end.astimezone(zone).date() + timedelta(days=1)
        raw: list[Interval] = []
        day = first
        while day <= last:
            for span in self.weekly:
                if span.start_day != day.weekday():
                    continue
                begin = datetime.combine(day, span.start)
                finish = datetime.combine(day + timedelta(days=span.length_days()), span.end)
                raw.append(Interval(_to_utc(begin, zone), _to_utc(finish, zone)))
            day += timedelta(days=1)
        for dated in self.dated:
            raw.append(Interval(_to_utc(dated.start, zone), _to_utc(dated.end, zone)))
        # Spans reach days past `last`: holidays are cut wherever the spans reach.
        reach = max((iv.end for iv in raw), default=end).astimezone(zone).date()
        holes = [
            Interval(_local_midnight(h, zone), _local_midnight(h + timedelta(days=1), zone))
            for h in sorted(self.holidays)
            if first <= h <= reach
        ]
        merged = merge_intervals(_subtract(merge_intervals(raw), holes))
        return [iv for iv in merged if iv.end > start and iv.start < end]

    def occurrence_at(self, instant: datetime, horizon: timedelta = DEFAULT_HORIZON) -> Interval | None:
        """The whole interval containing `instant`, or None.

        Back-to-back spans merge, so the interval is looked at over a growing
        range until its end is known: a span that is not generated can't
        start before the day after the generated range. An interval still
        running at `horizon` (a calendar that never closes) ends there.
        """
        reach = timedelta(days=8)
        while True:
            found = next((iv for iv in self.intervals(instant, instant + reach) if iv.contains(instant)), None)
            if found is None:
                return None
            settled = _local_midnight(
                (instant + reach).astimezone(self.timezone).date() + timedelta(days=2), self.timezone
            )
            if found.end < settled:
                return found
            if reach >= horizon:
                return Interval(found.start, min(found.end, instant + horizon))
            reach = min(reach * 4, horizon)

    def contains(self, instant: datetime) -> bool:
        return self.occurrence_at(instant) is not None

    def upcoming(self, after: datetime, horizon: timedelta = DEFAULT_HORIZON) -> Iterator[Interval]:
        """Intervals that start at or after `after`, in order, within `horizon`."""
        window_start = after
        limit = after + horizon
        step = timedelta(days=14)
        while window_start < limit:
            window_end = min(window_start + step, limit)
            for iv in self.intervals(window_start, window_end):
                if window_start <= iv.start < window_end:
                    yield iv
            window_start = window_end

    def next_start(self, after: datetime, horizon: timedelta = DEFAULT_HORIZON) -> datetime | None:
        return next((iv.start for iv in self.upcoming(after, horizon)), None)


@dataclass(frozen=True)
class ServiceWindow:
    """When a line takes calls: always, or inside a calendar."""

    calendar: WeeklyCalendar | None = None

    @classmethod
    def always(cls) -> ServiceWindow:
        return cls(None)

    @property
    def is_always(self) -> bool:
        return self.calendar is None

    def is_open(self, now: datetime) -> bool:
        return self.calendar is None or self.calendar.contains(now)

    def next_opening(self, now: datetime) -> datetime | None:
        """When the window next opens, if it is closed now and opens within the horizon."""
        if self.calendar is None or self.calendar.contains(now):
            return None
        return self.calendar.next_start(now)
