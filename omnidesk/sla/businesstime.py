"""Business-time arithmetic over weekly hours, holidays and time zones. No Django.

All arithmetic is in real elapsed seconds inside open intervals, so a DST change day counts the
hours that actually passed, and an instant is always an aware datetime.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc
#: safety net: a calendar with no open time at all must not loop forever
MAX_DAYS = 3 * 366


class ClosedCalendar(ValueError):
    """The calendar has no open time in the horizon searched."""


@dataclass(frozen=True)
class BusinessCalendar:
    tz: ZoneInfo
    #: weekday (0 = Monday) → open ranges in local time, end exclusive; time(0) as end = midnight
    hours: Mapping[int, tuple[tuple[time, time], ...]]
    holidays: frozenset[date] = field(default_factory=frozenset)
    _days: dict[date, list[tuple[datetime, datetime]]] = field(default_factory=dict, compare=False, repr=False)
    #: open every whole day, no holidays: business time is calendar time (no interval walking)
    _always: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        whole_day = ((time(0), time(0)),)
        always = not self.holidays and all(tuple(self.hours.get(d, ())) == whole_day for d in range(7))
        object.__setattr__(self, "_always", always)

    @classmethod
    def always_open(cls) -> BusinessCalendar:
        return cls(tz=ZoneInfo("UTC"), hours={d: ((time(0), time(0)),) for d in range(7)})

    # -- intervals ---------------------------------------------------------------------
    def _day_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        cached = self._days.get(day)
        if cached is None:
            cached = self._days[day] = self._compute_day(day)
            if len(self._days) > 4096:
                self._days.clear()
        return cached

    def _compute_day(self, day: date) -> list[tuple[datetime, datetime]]:
        if day in self.holidays:
            return []
        out = []
        for start, end in self.hours.get(day.weekday(), ()):
            s = datetime.combine(day, start, tzinfo=self.tz)
            e = datetime.combine(day + timedelta(days=1) if end == time(0) else day, end, tzinfo=self.tz)
            s_utc, e_utc = s.astimezone(UTC), e.astimezone(UTC)
            if e_utc > s_utc:
                out.append((s_utc, e_utc))
        return out

    def intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals (UTC) from `start` on, the first clipped to start."""
        start = _aware(start).astimezone(UTC)
        day = start.astimezone(self.tz).date() - timedelta(days=1)  # a range may run past midnight
        for _ in range(MAX_DAYS):
            for s, e in self._day_intervals(day):
                if e <= start:
                    continue
                yield max(s, start), e
            day += timedelta(days=1)

    # -- queries -----------------------------------------------------------------------
    def is_open(self, instant: datetime) -> bool:
        instant = _aware(instant).astimezone(UTC)
        if self._always:
            return True
        for s, e in self.intervals(instant):
            return s <= instant < e
        return False

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant when `seconds` of open time have passed after `start`."""
        if seconds < 0:
            raise ValueError("cannot add negative business time")
        if seconds == 0:
            return _aware(start)
        if self._always:
            return _aware(start).astimezone(UTC) + timedelta(seconds=seconds)
        remaining = seconds
        for s, e in self.intervals(start):
            span = (e - s).total_seconds()
            if remaining <= span:
                return s + timedelta(seconds=remaining)
            remaining -= span
        raise ClosedCalendar(f"no open time within {MAX_DAYS} days")

    def elapsed(self, start: datetime, end: datetime) -> float:
        """Seconds of open time between two instants (0 when end <= start)."""
        start, end = _aware(start).astimezone(UTC), _aware(end).astimezone(UTC)
        total = 0.0
        if end <= start:
            return 0.0
        if self._always:
            return (end - start).total_seconds()
        for s, e in self.intervals(start):
            if s >= end:
                break
            total += (min(e, end) - s).total_seconds()
        return total


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("business-time arithmetic needs aware datetimes")
    return value
