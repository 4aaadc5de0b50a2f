from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.calendars.business_time import BusinessCalendar, Interval, NeverOpen

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
STOCKHOLM = ZoneInfo("Europe/Stockholm")
HOUR = timedelta(hours=1)
TICK = timedelta(microseconds=1)
# The nights the clocks change in both zones (01:00 UTC), and one ordinary moment.
ANCHORS = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2027, 3, 28, 1, tzinfo=UTC),
    datetime(2027, 10, 31, 1, tzinfo=UTC),
    datetime(2026, 12, 24, 12, tzinfo=UTC),
]

relaxed = settings(max_examples=200, deadline=None)


def weekdays(start: time, end: time | None, days: range = range(5)) -> dict[int, tuple[Interval]]:
    return {day: ((start, end),) for day in days}


def local(moment: datetime, zone: ZoneInfo = COPENHAGEN) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _quarter(quarter: int) -> time:
    return time(quarter // 4, quarter % 4 * 15)


@st.composite
def day_hours(draw: st.DrawFn) -> tuple[Interval, ...]:
    """Up to three intervals on quarter hours, often touching 02:00-03:00 and 24:00."""
    quarter = st.one_of(st.integers(0, 96), st.integers(8, 12))
    quarters = draw(st.lists(quarter, unique=True, max_size=6).map(sorted))
    pairs = zip(quarters[::2], quarters[1::2], strict=False)
    return tuple((_quarter(start), None if end == 96 else _quarter(end)) for start, end in pairs)


# (weekday, first quarter hour, length in quarter hours), often in the night the clocks change.
intervals = st.tuples(
    st.integers(0, 6), st.one_of(st.integers(0, 95), st.integers(7, 12)), st.integers(1, 48)
)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    """Random weekly hours (overlapping ones merge), overnight shifts and holidays."""
    zone = draw(st.sampled_from([COPENHAGEN, STOCKHOLM, ZoneInfo("UTC")]))
    hours: dict[int, list[Interval]] = {}
    for day, first, length in draw(st.lists(intervals, min_size=1, max_size=10)):
        end = min(first + length, 96)
        hours.setdefault(day, []).append((_quarter(first), None if end == 96 else _quarter(end)))
    for day in draw(st.sets(st.integers(0, 6), max_size=2)):
        hours.setdefault(day, []).append((time(22), None))
        hours.setdefault((day + 1) % 7, []).append((time(0), time(6)))
    anchor = draw(st.sampled_from(ANCHORS)).date()
    holidays = draw(st.frozensets(st.integers(-12, 12), max_size=6))
    return BusinessCalendar(
        zone,
        {day: tuple(listed) for day, listed in hours.items()},
        frozenset(anchor + timedelta(d) for d in holidays),
    )


moments = st.builds(
    lambda anchor, minutes, micros: anchor + timedelta(minutes=minutes, microseconds=micros),
    st.sampled_from(ANCHORS),
    st.one_of(
        st.integers(-14 * 24 * 60, 14 * 24 * 60),
        st.integers(-2 * 24 * 60, 2 * 24 * 60),
        st.integers(-180, 180),
    ),
    st.one_of(st.just(0), st.integers(0, 59_999_999)),
)
durations = st.one_of(
    st.integers(0, 10 * 24 * 4).map(lambda quarters: timedelta(minutes=15 * quarters)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)),
)


@relaxed
@given(calendars(), moments, durations)
def test_the_time_added_is_the_time_elapsed(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    assert calendar.elapsed(start, calendar.add(start, duration)) == duration


@relaxed
@given(calendars(), moments, durations, durations)
def test_adding_is_monotonic_and_adds_up_in_steps(
    calendar: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    shorter, longer = sorted([first, second])
    assert calendar.add(start, shorter) <= calendar.add(start, longer)
    assert calendar.add(start, first + second) == calendar.add(calendar.add(start, first), second)


@relaxed
@given(calendars(), st.lists(moments, min_size=3, max_size=3).map(sorted))
def test_elapsed_time_adds_up_and_never_exceeds_real_time(
    calendar: BusinessCalendar, moments: list[datetime]
) -> None:
    a, b, c = moments
    assert calendar.elapsed(a, c) == calendar.elapsed(a, b) + calendar.elapsed(b, c)
    assert timedelta(0) <= calendar.elapsed(a, c) <= c - a
    assert calendar.elapsed(c, a) == timedelta(0)


@relaxed
@given(calendars(), moments, durations)
def test_the_desk_is_open_just_before_the_time_is_up(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    assume(duration > timedelta(0))
    end = calendar.add(start, duration)
    assert end > start
    assert calendar.is_open(end - TICK)
    opening = calendar.next_opening(start)
    assert calendar.is_open(opening)
    assert calendar.elapsed(start, opening) == timedelta(0)
    assert opening <= end - TICK


@relaxed
@given(calendars(), moments)
def test_open_means_wall_clock_inside_the_days_hours(
    calendar: BusinessCalendar, moment: datetime
) -> None:
    """Away from the hour the clocks change, is_open is the plain reading of the hours."""
    zone = calendar.timezone
    assume(zone.utcoffset(local(moment - 2 * HOUR, zone)) == zone.utcoffset(local(moment, zone)))
    assume(zone.utcoffset(local(moment + 2 * HOUR, zone)) == zone.utcoffset(local(moment, zone)))
    wall = local(moment, zone)
    inside = any(
        start <= wall.time() and (end is None or wall.time() < end)
        for start, end in calendar.hours.get(wall.weekday(), ())
    )
    expected = inside and wall.date() not in calendar.holidays
    assert calendar.is_open(moment) is expected
    assert (calendar.elapsed(moment, moment + TICK) == TICK) is expected
    assert (calendar.next_opening(moment) == moment) is expected


def _minutes(moment: time | None) -> int:
    return 24 * 60 if moment is None else moment.hour * 60 + moment.minute


@relaxed
@given(
    st.sampled_from([COPENHAGEN, STOCKHOLM]),
    day_hours(),
    st.sampled_from([date(2026, 3, 29), date(2027, 3, 28)]),
)
def test_the_skipped_hour_is_never_open(
    zone: ZoneInfo, hours: tuple[Interval, ...], day: date
) -> None:
    calendar = BusinessCalendar(zone, {6: hours})
    expected = sum(
        _minutes(end)
        - _minutes(start)
        - max(0, min(_minutes(end), 180) - max(_minutes(start), 120))
        for start, end in hours
    )
    midnight = datetime.combine(day, time(0), zone)
    next_midnight = datetime.combine(day + timedelta(1), time(0), zone)
    assert calendar.elapsed(midnight, next_midnight) == timedelta(minutes=expected)


@relaxed
@given(
    st.sampled_from([COPENHAGEN, STOCKHOLM]),
    day_hours(),
    st.sampled_from([date(2026, 10, 25), date(2027, 10, 31)]),
)
def test_the_repeated_hour_counts_twice_inside_an_interval_through_it(
    zone: ZoneInfo, hours: tuple[Interval, ...], day: date
) -> None:
    calendar = BusinessCalendar(zone, {6: hours})
    expected = sum(
        _minutes(end) - _minutes(start) + (60 if _minutes(start) < 180 <= _minutes(end) else 0)
        for start, end in hours
    )
    midnight = datetime.combine(day, time(0), zone)
    next_midnight = datetime.combine(day + timedelta(1), time(0), zone)
    assert calendar.elapsed(midnight, next_midnight) == timedelta(minutes=expected)


@relaxed
@given(moments, durations, moments)
def test_always_open_is_plain_time_arithmetic(
    start: datetime, duration: timedelta, end: datetime
) -> None:
    always = BusinessCalendar.always_open()
    assert always.add(start, duration) == start + duration
    assert always.elapsed(start, end) == max(end - start, timedelta(0))
    assert always.is_open(start)
    assert always.next_opening(start) == start


def test_an_hour_before_closing_on_friday_ends_on_monday_morning() -> None:
    desk = BusinessCalendar(COPENHAGEN, weekdays(time(8), time(16)))
    friday = datetime(2026, 11, 20, 15, 30, tzinfo=COPENHAGEN)
    due = desk.add(friday, HOUR)
    assert due.tzinfo == UTC
    assert local(due) == datetime(2026, 11, 23, 8, 30)
    assert desk.elapsed(friday, due) == HOUR
    assert not desk.is_open(datetime(2026, 11, 21, 12, tzinfo=COPENHAGEN))
    assert local(desk.next_opening(datetime(2026, 11, 20, 16, tzinfo=COPENHAGEN))) == datetime(
        2026, 11, 23, 8
    )


def test_time_used_up_at_closing_ends_at_closing() -> None:
    desk = BusinessCalendar(COPENHAGEN, weekdays(time(8), time(16)))
    due = desk.add(datetime(2026, 11, 20, 15, tzinfo=COPENHAGEN), HOUR)
    assert local(due) == datetime(2026, 11, 20, 16)


def test_danish_christmas_and_easter_close_the_desk() -> None:
    holidays = {date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26)}
    holidays |= {date(2026, 4, 2), date(2026, 4, 3), date(2026, 4, 6)}  # Easter is April 5
    desk = BusinessCalendar(COPENHAGEN, weekdays(time(8), time(16)), frozenset(holidays))
    before_christmas = datetime(2026, 12, 23, 15, tzinfo=COPENHAGEN)
    assert local(desk.add(before_christmas, 2 * HOUR)) == datetime(2026, 12, 28, 9)
    before_easter = datetime(2026, 4, 1, 15, tzinfo=COPENHAGEN)
    assert local(desk.add(before_easter, 2 * HOUR)) == datetime(2026, 4, 7, 9)
    assert desk.elapsed(before_easter, datetime(2026, 4, 8, tzinfo=COPENHAGEN)) == 9 * HOUR


def test_swedish_midsummer_eve_is_closed() -> None:
    midsommarafton = date(2026, 6, 19)
    desk = BusinessCalendar(STOCKHOLM, weekdays(time(8), time(17)), frozenset({midsommarafton}))
    thursday = datetime(2026, 6, 18, 16, tzinfo=STOCKHOLM)
    assert local(desk.add(thursday, 2 * HOUR), STOCKHOLM) == datetime(2026, 6, 22, 9)
    assert not desk.is_open(datetime(2026, 6, 19, 10, tzinfo=STOCKHOLM))


def test_overnight_opening_counts_on_across_midnight() -> None:
    night = BusinessCalendar(COPENHAGEN, {0: ((time(22), None),), 1: ((time(0), time(6)),)})
    monday_late = datetime(2026, 11, 16, 23, tzinfo=COPENHAGEN)
    assert local(night.add(monday_late, 2 * HOUR)) == datetime(2026, 11, 17, 1)
    assert night.is_open(datetime(2026, 11, 17, 0, tzinfo=COPENHAGEN))
    assert night.elapsed(monday_late, datetime(2026, 11, 18, tzinfo=COPENHAGEN)) == 7 * HOUR


def test_the_spring_night_is_an_hour_shorter() -> None:
    """Copenhagen skips 02:00-03:00 on Sunday 29 March 2026."""
    night = BusinessCalendar(COPENHAGEN, {5: ((time(22), None),), 6: ((time(0), time(6)),)})
    saturday_late = datetime(2026, 3, 28, 22, tzinfo=COPENHAGEN)
    assert night.elapsed(saturday_late, datetime(2026, 3, 30, tzinfo=COPENHAGEN)) == 7 * HOUR
    assert local(night.add(saturday_late + HOUR, 3 * HOUR)) == datetime(2026, 3, 29, 3)
    whole_day = BusinessCalendar(COPENHAGEN, {6: ((time(0), None),)})
    sunday = datetime(2026, 3, 29, tzinfo=COPENHAGEN)
    assert whole_day.elapsed(sunday, sunday + 2 * 24 * HOUR) == 23 * HOUR
    office = BusinessCalendar(COPENHAGEN, {6: ((time(8), time(16)),)})
    assert office.elapsed(sunday, sunday + 2 * 24 * HOUR) == 8 * HOUR
    skipped = BusinessCalendar(COPENHAGEN, {6: ((time(2), time(2, 30)), (time(10), time(11)))})
    assert skipped.elapsed(sunday, sunday + 24 * HOUR) == HOUR  # 02:00-02:30 never happens


def test_the_autumn_night_is_an_hour_longer() -> None:
    """Stockholm goes through 02:00-03:00 twice on Sunday 25 October 2026."""
    night = BusinessCalendar(STOCKHOLM, {5: ((time(22), None),), 6: ((time(0), time(6)),)})
    saturday_late = datetime(2026, 10, 24, 22, tzinfo=STOCKHOLM)
    assert night.elapsed(saturday_late, datetime(2026, 10, 26, tzinfo=STOCKHOLM)) == 9 * HOUR
    assert local(night.add(saturday_late, 5 * HOUR), STOCKHOLM) == datetime(2026, 10, 25, 2)
    whole_day = BusinessCalendar(STOCKHOLM, {6: ((time(0), None),)})
    sunday = datetime(2026, 10, 25, tzinfo=STOCKHOLM)
    assert whole_day.elapsed(sunday, sunday + 2 * 24 * HOUR) == 25 * HOUR
    # A time that occurs twice means its first occurrence: 02:00-03:00 spans both passes.
    repeated = BusinessCalendar(STOCKHOLM, {6: ((time(2), time(3)),)})
    assert repeated.elapsed(sunday, sunday + 24 * HOUR) == 2 * HOUR


def test_a_calendar_without_hours_refuses_to_count() -> None:
    closed = BusinessCalendar(COPENHAGEN, {})
    moment = datetime(2026, 11, 20, 12, tzinfo=UTC)
    with pytest.raises(NeverOpen, match="no opening hours"):
        closed.add(moment, HOUR)
    with pytest.raises(NeverOpen):
        closed.next_opening(moment)
    assert closed.add(moment, timedelta(0)) == moment
    assert closed.elapsed(moment, moment + HOUR) == timedelta(0)
    assert not closed.is_open(moment)


def test_naive_moments_and_backward_intervals_are_refused() -> None:
    desk = BusinessCalendar(COPENHAGEN, weekdays(time(8), time(16)))
    with pytest.raises(ValueError, match="aware"):
        desk.add(datetime(2026, 11, 20, 12), HOUR)
    with pytest.raises(ValueError, match="end after it starts"):
        BusinessCalendar(COPENHAGEN, weekdays(time(16), time(8)))
    with pytest.raises(ValueError, match="negative"):
        desk.add(datetime(2026, 11, 20, 12, tzinfo=UTC), -HOUR)


def test_overlapping_intervals_are_merged() -> None:
    desk = BusinessCalendar(COPENHAGEN, {0: ((time(12), None), (time(8), time(13)))})
    monday = datetime(2026, 11, 16, tzinfo=COPENHAGEN)
    assert desk.elapsed(monday, monday + 24 * HOUR) == 16 * HOUR
