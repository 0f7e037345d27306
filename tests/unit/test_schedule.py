"""Wall-clock calendars, including both DST changes in Europe/Paris."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from dialplan.schedule import DatedSpan, ServiceWindow, WeeklyCalendar, WeeklySpan

PARIS = ZoneInfo("Europe/Paris")
FRI, MON = 4, 0


def weekend_overflow() -> WeeklyCalendar:
    return WeeklyCalendar(PARIS, weekly=(WeeklySpan(FRI, time(18), MON, time(8)),))


def business_hours(holidays: frozenset[date] = frozenset()) -> WeeklyCalendar:
    spans = tuple(WeeklySpan(d, time(8), d, time(18)) for d in range(5))
    return WeeklyCalendar(PARIS, weekly=spans, holidays=holidays)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_weekend_window_over_spring_forward_keeps_wall_clock_hours() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST. Fri 27 18:00 CET = 17:00Z; Mon 30 08:00 CEST = 06:00Z.
    occurrence = weekend_overflow().occurrence_at(utc(2026, 3, 28, 12))
    assert occurrence is not None
    assert occurrence.start == utc(2026, 3, 27, 17)
    assert occurrence.end == utc(2026, 3, 30, 6)
    assert occurrence.seconds == (62 - 1) * 3600


def test_weekend_window_over_fall_back_keeps_wall_clock_hours() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET. Fri 23 18:00 CEST = 16:00Z; Mon 26 08:00 CET = 07:00Z.
    occurrence = weekend_overflow().occurrence_at(utc(2026, 10, 24, 12))
    assert occurrence is not None
    assert occurrence.start == utc(2026, 10, 23, 16)
    assert occurrence.end == utc(2026, 10, 26, 7)
    assert occurrence.seconds == (62 + 1) * 3600


def test_window_boundaries_are_half_open() -> None:
    cal = weekend_overflow()
    assert not cal.contains(utc(2026, 3, 27, 16, 59, 59))
    assert cal.contains(utc(2026, 3, 27, 17))
    assert cal.contains(utc(2026, 3, 30, 5, 59, 59))
    assert not cal.contains(utc(2026, 3, 30, 6))


def test_span_starting_in_the_spring_gap_starts_at_the_first_real_instant() -> None:
    cal = WeeklyCalendar(PARIS, weekly=(WeeklySpan(6, time(2, 30), 6, time(4)),))
    occurrence = cal.occurrence_at(utc(2026, 3, 29, 1, 45))
    assert occurrence is not None
    # 02:30 does not exist that night; it resolves to 03:30 CEST = 01:30Z.
    assert occurrence.start == utc(2026, 3, 29, 1, 30)
    assert occurrence.end == utc(2026, 3, 29, 2)


def test_holidays_close_the_whole_local_day() -> None:
    cal = business_hours(frozenset({date(2026, 12, 25)}))
    assert not cal.contains(utc(2026, 12, 25, 10))
    assert cal.contains(utc(2026, 12, 24, 10))
    assert cal.next_start(utc(2026, 12, 24, 18)) == utc(2026, 12, 28, 7)


def test_next_opening_of_business_hours_from_saturday() -> None:
    window = ServiceWindow(business_hours())
    saturday_noon = utc(2026, 11, 21, 11)
    assert not window.is_open(saturday_noon)
    assert window.next_opening(saturday_noon) == utc(2026, 11, 23, 7)
    assert window.next_opening(utc(2026, 11, 23, 9)) is None


def test_full_week_span_is_always_open() -> None:
    cal = WeeklyCalendar(ZoneInfo("UTC"), weekly=(WeeklySpan(0, time(0), 0, time(0)),))
    assert cal.contains(utc(2026, 1, 1))
    occurrence = cal.occurrence_at(utc(2026, 1, 5, 0))
    assert occurrence is not None
    assert occurrence.seconds >= 7 * 86400


def test_daily_spans_merge_across_midnight() -> None:
    spans = tuple(WeeklySpan(d, time(0), (d + 1) % 7, time(0)) for d in range(7))
    cal = WeeklyCalendar(PARIS, weekly=spans)
    occurrence = cal.occurrence_at(utc(2026, 6, 10, 23, 59, 59))
    assert occurrence is not None
    assert occurrence.end - occurrence.start > timedelta(days=7)


def test_dated_span_in_its_own_zone() -> None:
    cal = WeeklyCalendar(PARIS, dated=(DatedSpan(datetime(2026, 11, 23, 7), datetime(2026, 11, 23, 13)),))
    assert cal.contains(utc(2026, 11, 23, 6))
    assert not cal.contains(utc(2026, 11, 23, 12))
    assert cal.next_start(utc(2026, 11, 1)) == utc(2026, 11, 23, 6)


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(instants)
def test_business_hours_match_the_local_wall_clock(instant: datetime) -> None:
    local = instant.astimezone(PARIS)
    expected = local.weekday() < 5 and time(8) <= local.time() < time(18)
    assert business_hours().contains(instant) == expected


@settings(max_examples=200, deadline=None)
@given(instants)
def test_next_opening_is_the_first_open_instant(instant: datetime) -> None:
    window = ServiceWindow(business_hours(frozenset({date(2026, 12, 25), date(2027, 1, 1)})))
    opening = window.next_opening(instant)
    if window.is_open(instant):
        assert opening is None
        return
    assert opening is not None
    assert opening > instant
    assert window.is_open(opening)
    assert not window.is_open(opening - timedelta(seconds=1))


def test_a_holiday_cuts_an_occurrence_whatever_day_it_is_queried_from() -> None:
    cal = WeeklyCalendar(
        PARIS, weekly=(WeeklySpan(FRI, time(18), MON, time(8)),), holidays=frozenset({date(2026, 11, 30)})
    )
    from_saturday = cal.occurrence_at(utc(2026, 11, 28, 12))
    from_sunday = cal.occurrence_at(utc(2026, 11, 29, 22))
    assert from_saturday == from_sunday
    assert from_saturday is not None
    # Monday 30 is a holiday: the window ends at Sunday midnight, Paris time.
    assert from_saturday.end == utc(2026, 11, 29, 23)


def test_back_to_back_spans_give_the_same_end_from_any_instant() -> None:
    # Mon-Fri 08:00-24:00 plus 00:00-08:00: one block from Monday 08:00 to Saturday 08:00.
    spans = tuple(WeeklySpan(d, time(8), d + 1, time(0)) for d in range(5)) + tuple(
        WeeklySpan(d, time(0), d, time(8)) for d in range(1, 6)
    )
    cal = WeeklyCalendar(PARIS, weekly=spans)
    ends = {cal.occurrence_at(utc(2026, 11, day, 12)).end for day in (23, 24, 25, 26, 27)}  # type: ignore[union-attr]
    assert ends == {utc(2026, 11, 28, 7)}


def test_a_calendar_that_never_closes_ends_at_the_horizon() -> None:
    cal = WeeklyCalendar(ZoneInfo("UTC"), weekly=tuple(WeeklySpan(d, time(0), (d + 1) % 7, time(0)) for d in range(7)))
    occurrence = cal.occurrence_at(utc(2026, 1, 1), horizon=timedelta(days=30))
    assert occurrence is not None
    assert occurrence.end == utc(2026, 1, 31)
