"""Deadline maths over business calendars: examples, DST, and properties checked with hypothesis."""

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnidesk.sla.businesstime import BusinessCalendar, ClosedCalendar

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = {d: ((time(9), time(12)), (time(13), time(17))) for d in range(5)}  # split day, lunch closed
CAL = BusinessCalendar(tz=BERLIN, hours=WEEKDAYS, holidays=frozenset({date(2026, 12, 25), date(2026, 12, 26)}))
H = 3600


def local(*args):
    return datetime(*args, tzinfo=BERLIN)


def test_adding_within_one_range():
    assert CAL.add(local(2026, 11, 23, 9, 30), 1 * H) == local(2026, 11, 23, 10, 30)


def test_adding_skips_lunch_nights_and_weekends():
    assert CAL.add(local(2026, 11, 23, 11, 30), 1 * H) == local(2026, 11, 23, 13, 30)  # Monday, over lunch
    assert CAL.add(local(2026, 11, 27, 16, 0), 2 * H) == local(2026, 11, 30, 10, 0)  # Friday → Monday
    assert CAL.add(local(2026, 11, 28, 3, 0), 1) == local(2026, 11, 30, 9, 0, 1)  # Saturday night


def test_holidays_are_closed():
    assert CAL.add(local(2026, 12, 24, 16, 30), 1 * H) == local(2026, 12, 28, 9, 30)  # Christmas Thursday+Friday


def test_dst_change_counts_real_hours():
    night_shift = BusinessCalendar(tz=BERLIN, hours={6: ((time(0), time(6)),)})  # Sunday 00:00–06:00 local
    # 2026-03-29: clocks jump 02:00 → 03:00, so that night has 5 real hours open.
    assert night_shift.elapsed(local(2026, 3, 29, 0, 0), local(2026, 3, 29, 6, 0)) == 5 * H
    autumn = night_shift.elapsed(local(2026, 10, 25, 0, 0), local(2026, 10, 25, 6, 0))
    assert autumn == 7 * H  # 02:00–03:00 happens twice


def test_always_open_is_calendar_time():
    cal = BusinessCalendar.always_open()
    start = datetime(2026, 11, 22, 23, 0, tzinfo=timezone.utc)
    assert cal.add(start, 5 * H) == start + timedelta(hours=5)
    assert cal.elapsed(start, start + timedelta(days=3)) == 3 * 24 * H


def test_closed_calendar_and_bad_input():
    never = BusinessCalendar(tz=BERLIN, hours={})
    with pytest.raises(ClosedCalendar):
        never.add(local(2026, 1, 1, 0, 0), 60)
    with pytest.raises(ValueError):
        CAL.add(local(2026, 1, 1, 0, 0), -1)
    with pytest.raises(ValueError):
        CAL.add(datetime(2026, 1, 1), 60)


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(timezone.utc))
amounts = st.integers(min_value=0, max_value=200 * H)


@settings(max_examples=300, deadline=None)
@given(instants, amounts)
def test_elapsed_undoes_add(start, seconds):
    assert CAL.elapsed(start, CAL.add(start, seconds)) == pytest.approx(seconds, abs=1e-3)


@settings(max_examples=300, deadline=None)
@given(instants, amounts, amounts)
def test_add_is_monotonic(start, a, b):
    lo, hi = sorted((a, b))
    assert CAL.add(start, lo) <= CAL.add(start, hi)


@settings(max_examples=300, deadline=None)
@given(instants, amounts)
def test_a_positive_deadline_lands_in_open_time(start, seconds):
    due = CAL.add(start, seconds + 1)
    assert CAL.is_open(due - timedelta(microseconds=1))


@settings(max_examples=300, deadline=None)
@given(instants, instants, instants)
def test_elapsed_is_additive(a, b, c):
    a, b, c = sorted((a, b, c))
    assert CAL.elapsed(a, c) == pytest.approx(CAL.elapsed(a, b) + CAL.elapsed(b, c), abs=1e-3)
