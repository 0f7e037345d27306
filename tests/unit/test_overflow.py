"""Overflow windows: the weekend schedule, holidays, ad-hoc takeovers, the switch, and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from dialplan.overflow import Overflow, OverflowSchedule, Takeover, WindowState
from dialplan.schedule import Interval, WeeklySpan

PARIS = ZoneInfo("Europe/Paris")
WEEKEND = WeeklySpan(4, time(18), 0, time(8))  # Friday 18:00 → Monday 08:00


def overflow(**schedule: object) -> Overflow:
    return Overflow("acme-main", OverflowSchedule(PARIS, weekly=(WEEKEND,), **schedule), Takeover.REGISTRATION)  # type: ignore[arg-type]


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


def test_the_weekend_window_opens_and_closes_on_the_local_wall_clock() -> None:
    o = overflow()
    assert not o.active(paris(2026, 11, 20, 17, 59, 59))
    assert o.active(paris(2026, 11, 20, 18))
    assert o.active(paris(2026, 11, 23, 7, 59, 59))
    assert not o.active(paris(2026, 11, 23, 8))
    assert o.schedule.next_change(paris(2026, 11, 20, 12)) == paris(2026, 11, 20, 18)
    assert o.schedule.next_change(paris(2026, 11, 21, 12)) == paris(2026, 11, 23, 8)


def test_a_weekend_over_the_spring_change_is_an_hour_shorter_and_keeps_its_wall_clock_ends() -> None:
    # Sunday 29 March 2026, 02:00 CET becomes 03:00 CEST.
    (window,) = overflow().schedule.windows(paris(2026, 3, 27, 12), paris(2026, 3, 28))
    assert window.interval.start == datetime(2026, 3, 27, 17, tzinfo=UTC)  # 18:00 CET
    assert window.interval.end == datetime(2026, 3, 30, 6, tzinfo=UTC)  # 08:00 CEST
    assert window.interval.seconds == 61 * 3600
    assert overflow().active(datetime(2026, 3, 29, 1, 30, tzinfo=UTC))  # Sunday 03:30 CEST


def test_a_weekend_over_the_autumn_change_is_an_hour_longer_and_keeps_its_wall_clock_ends() -> None:
    # Sunday 25 October 2026, 03:00 CEST becomes 02:00 CET.
    (window,) = overflow().schedule.windows(paris(2026, 10, 23, 12), paris(2026, 10, 24))
    assert window.interval.start == datetime(2026, 10, 23, 16, tzinfo=UTC)  # 18:00 CEST
    assert window.interval.end == datetime(2026, 10, 26, 7, tzinfo=UTC)  # 08:00 CET
    assert window.interval.seconds == 63 * 3600
    assert not overflow().active(datetime(2026, 10, 26, 7, tzinfo=UTC))
    assert overflow().active(datetime(2026, 10, 26, 6, 59, tzinfo=UTC))


def test_a_window_starting_in_the_skipped_hour_starts_when_the_clocks_reach_it() -> None:
    night = WeeklySpan(6, time(2, 30), 6, time(4))  # Sunday 02:30 → 04:00, which doesn't exist on 29 March
    o = Overflow("l", OverflowSchedule(PARIS, weekly=(night,)), Takeover.FORWARDED)
    (window,) = o.schedule.windows(paris(2026, 3, 29, 0), paris(2026, 3, 29, 12))
    assert window.interval.start == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # read as 03:30 CEST: forward
    assert window.interval.end == datetime(2026, 3, 29, 2, tzinfo=UTC)


def test_holidays_are_whole_local_days_taken_over() -> None:
    o = overflow(holidays=frozenset({date(2026, 12, 25)}))  # a Friday
    assert o.active(paris(2026, 12, 25, 0))
    assert o.active(paris(2026, 12, 25, 12))
    assert not o.active(paris(2026, 12, 24, 23, 59))
    sources = [(w.source, w.interval.start) for w in o.upcoming(paris(2026, 12, 24, 12), days=2)]
    assert sources == [
        ("holiday", datetime(2026, 12, 24, 23, tzinfo=UTC)),
        ("weekly", datetime(2026, 12, 25, 17, tzinfo=UTC)),
    ]


def test_take_over_now_until_and_the_switch() -> None:
    now = paris(2026, 11, 24, 10)  # a Tuesday: no weekend window
    o = overflow()
    assert not o.active(now)
    taken = o.take_over_until(now, now + timedelta(hours=2))
    assert taken.active(now)
    assert taken.active(now + timedelta(hours=1, minutes=59))
    assert not taken.active(now + timedelta(hours=2))
    (adhoc,) = [w for w in taken.upcoming(now, days=1) if w.source == "adhoc"]
    assert [adhoc.state(t) for t in (now - timedelta(seconds=1), now, now + timedelta(hours=2))] == [
        WindowState.SCHEDULED,
        WindowState.ACTIVE,
        WindowState.ENDED,
    ]
    # Off suspends every window, the weekend's too; on again restores them as they were.
    off = taken.switch(False)
    assert not off.active(now)
    assert not off.active(paris(2026, 11, 28, 12))
    assert off.switch(True).active(now)
    with pytest.raises(ValueError, match="must be after now"):
        o.take_over_until(now, now)
    # A later takeover drops the ended ones.
    later = taken.take_over_until(now + timedelta(hours=3), now + timedelta(hours=4))
    assert later.schedule.adhoc == (Interval(now + timedelta(hours=3), now + timedelta(hours=4)),)
