"""Business-time arithmetic over a calendar of weekly opening hours, pure and without I/O.

Opening hours are local wall-clock times in the calendar's time zone, so an "08:00-16:00"
day is 8 real hours also on a DST day, and an "00:00-24:00" day is 23 or 25. Each local date
is turned into its open intervals as real (UTC) moments, and the arithmetic walks those day
by day: a 30-day ``add`` looks at about 30 days, never at minutes.

A wall-clock time that does not exist or exists twice is resolved by one monotonic rule, so
the intervals of a day never overlap or run backwards:

- a time skipped when the clocks go forward (02:30 on the spring night in Europe) means the
  moment the clocks jump, so an interval lying wholly inside the skipped hour is empty;
- a time that occurs twice when the clocks go back means its first occurrence, so an
  interval "02:00-03:00" on the autumn night covers both passes of that hour (2 real hours).

Intervals are half-open, ``[start, end)``: a desk open 08:00-16:00 is open at 08:00 and
closed at 16:00. Overnight opening is two intervals (Mon 22:00-24:00 and Tue 00:00-06:00);
they meet at midnight, so counting runs on without a gap. A holiday closes its whole local
date, including the early part of an overnight shift that belongs to that date.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[time, time | None]
"""Local opening and closing wall-clock times; a closing time of None is 24:00."""

_ZERO = timedelta(0)
_DAY = timedelta(days=1)
_MIDNIGHT = time(0)
_WHOLE_DAY: tuple[Interval, ...] = ((_MIDNIGHT, None),)


class NeverOpen(ValueError):
    """The calendar has no opening hours, so business time never passes."""

    def __init__(self) -> None:
        super().__init__("The calendar has no opening hours: business time never passes in it.")


def _end_key(end: time | None) -> tuple[bool, time]:
    """Orders closing times with 24:00 (None) after every time of the day."""
    return (end is None, end or _MIDNIGHT)


def _normalise(intervals: tuple[Interval, ...]) -> tuple[Interval, ...]:
    """Sorted, with overlapping or touching intervals merged into one."""
    merged: list[Interval] = []
    for start, end in sorted(intervals, key=lambda interval: interval[0]):
        if start.tzinfo is not None or (end is not None and end.tzinfo is not None):
            raise ValueError("Opening hours are local wall-clock times, without a time zone.")
        if end is not None and end <= start:
            raise ValueError(f"An interval must end after it starts ({start} to {end}).")
        if merged and _end_key(merged[-1][1]) >= (False, start):
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, max(last_end, end, key=_end_key))
        else:
            merged.append((start, end))
    return tuple(merged)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"Business time needs aware datetimes, got {moment.isoformat()}.")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekly opening hours (weekday 0 = Monday) in a time zone, closed on ``holidays``."""

    timezone: ZoneInfo
    hours: Mapping[int, tuple[Interval, ...]]
    holidays: frozenset[date] = frozenset()
    _week: tuple[tuple[Interval, ...], ...] = field(init=False, repr=False, compare=False)
    _continuous: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not set(self.hours) <= set(range(7)):
            raise ValueError("Weekdays are 0 (Monday) to 6 (Sunday).")
        week = tuple(_normalise(tuple(self.hours.get(day, ()))) for day in range(7))
        object.__setattr__(self, "_week", week)
        # Midnight to midnight every day covers every real moment, DST or not.
        object.__setattr__(
            self, "_continuous", not self.holidays and all(d == _WHOLE_DAY for d in week)
        )

    @classmethod
    def always_open(cls) -> BusinessCalendar:
        """Open 24/7 in UTC: business time is calendar time."""
        return cls(ZoneInfo("UTC"), dict.fromkeys(range(7), _WHOLE_DAY))

    @property
    def never_open(self) -> bool:
        return not any(self._week)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment (UTC) when ``duration`` of open time has passed since ``start``; the
        count starts at the next opening when ``start`` is closed. ``add(start, 0)`` is
        ``start`` itself; the result of a positive duration may be a closing time."""
        start = _as_utc(start)
        if duration < _ZERO:
            raise ValueError("A business-time duration cannot be negative.")
        if not duration or self._continuous:
            return start + duration
        remaining = duration
        for opens, closes in self._intervals_from(start):
            length = closes - max(opens, start)
            if remaining <= length:
                return max(opens, start) + remaining
            remaining -= length
        raise AssertionError("unreachable: the intervals never end")  # pragma: no cover

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Open time between ``start`` and ``end`` (zero when ``end`` is not after ``start``)."""
        start, end = _as_utc(start), _as_utc(end)
        if end <= start or self.never_open:
            return _ZERO
        if self._continuous:
            return end - start
        total = _ZERO
        for opens, closes in self._intervals_from(start):
            if opens >= end:
                break
            total += min(closes, end) - max(opens, start)
        return total

    def is_open(self, moment: datetime) -> bool:
        moment = _as_utc(moment)
        if self.never_open:
            return False
        opens, _ = next(self._intervals_from(moment))
        return opens <= moment

    def next_opening(self, moment: datetime) -> datetime:
        """``moment`` (UTC) if the calendar is open then, else the next opening."""
        moment = _as_utc(moment)
        opens, _ = next(self._intervals_from(moment))
        return max(opens, moment)

    def _intervals_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals as UTC moments, in order, from the first one ending after
        ``moment``; endless, so callers stop. Raises ``NeverOpen`` when there are none."""
        if self.never_open:
            raise NeverOpen
        # Earlier days' intervals end by this day's midnight, which is not after ``moment``.
        day = moment.astimezone(self.timezone).date()
        while True:
            if day not in self.holidays:
                for opens, closes in self._day_intervals(day):
                    if closes > moment:
                        yield opens, closes
            day += _DAY

    def _day_intervals(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        intervals = self._week[day.weekday()]
        if not intervals:
            return
        midnight = datetime.combine(day, _MIDNIGHT)
        offset = self.timezone.utcoffset(midnight)
        # Most days have one UTC offset from midnight to midnight: plain subtraction.
        if offset != self.timezone.utcoffset(midnight + _DAY):
            offset = None
        for start, end in intervals:
            opening = datetime.combine(day, start)
            closing = datetime.combine(day, end) if end is not None else midnight + _DAY
            if offset is None:
                pair = (self._resolve(opening), self._resolve(closing))
            else:
                pair = (
                    (opening - offset).replace(tzinfo=UTC),
                    (closing - offset).replace(tzinfo=UTC),
                )
            if pair[0] < pair[1]:
                yield pair

    def _resolve(self, wall: datetime) -> datetime:
        """The UTC moment of a local wall-clock time: its first occurrence if it occurs
        twice, the moment the clocks jump if it was skipped."""
        first = wall.replace(tzinfo=self.timezone).astimezone(UTC)
        if first.astimezone(self.timezone).replace(tzinfo=None) == wall:
            return first
        # Skipped: read with the old offset (fold=0) it falls after the jump, with the new
        # one (fold=1) before it; the jump lies between, on a whole second in the zone data.
        before = math.floor(wall.replace(tzinfo=self.timezone, fold=1).timestamp())
        after = math.ceil(first.timestamp())
        new_offset = first.astimezone(self.timezone).utcoffset()
        while after - before > 1:
            middle = (before + after) // 2
            if datetime.fromtimestamp(middle, self.timezone).utcoffset() == new_offset:
                after = middle
            else:
                before = middle
        return datetime.fromtimestamp(after, UTC)
