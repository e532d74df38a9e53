"""Checking calendars and policies before they are saved; each problem is named. No Django."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_data

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PRIORITIES = ("low", "normal", "high", "urgent")
METRICS = ("first_response", "next_response", "resolution")
CONDITIONS = {"priority", "customer_tags", "groups", "visibility", "channels"}


class Invalid(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def calendar_problems(*, timezone: str, hours: Any, holiday_country: str, holiday_subdivision: str, closed_dates: Any) -> list[str]:
    problems: list[str] = []
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone: {timezone!r} is not an IANA time zone (e.g. Europe/Berlin)")
    if not isinstance(hours, Mapping):
        problems.append('hours: must be an object like {"mon": [["09:00", "17:00"]]}')
    else:
        for day, ranges in hours.items():
            if day not in WEEKDAYS:
                problems.append(f"hours: {day!r} is not one of {', '.join(WEEKDAYS)}")
                continue
            if not isinstance(ranges, list):
                problems.append(f"hours.{day}: must be a list of [start, end] pairs")
                continue
            parsed = []
            for pair in ranges:
                try:
                    start, end = (time.fromisoformat(v) for v in pair)
                except (TypeError, ValueError):
                    problems.append(f"hours.{day}: {pair!r} is not a [\"HH:MM\", \"HH:MM\"] pair")
                    continue
                if end != time(0) and end <= start:
                    problems.append(f"hours.{day}: {pair[0]}–{pair[1]} ends before it starts (use 00:00 for midnight)")
                    continue
                parsed.append((start, end if end != time(0) else time.max))
            parsed.sort()
            for (_, a_end), (b_start, _) in zip(parsed, parsed[1:]):
                if b_start < a_end:
                    problems.append(f"hours.{day}: ranges overlap")
                    break
    if holiday_country:
        try:
            holiday_data.country_holidays(holiday_country, subdiv=holiday_subdivision or None, years=2026)
        except (NotImplementedError, KeyError) as exc:
            problems.append(f"holidays: {holiday_country}/{holiday_subdivision or '-'} is not known ({exc})")
    elif holiday_subdivision:
        problems.append("holidays: a subdivision needs a country")
    if not isinstance(closed_dates, list):
        problems.append('closed_dates: must be a list like ["2026-12-24"]')
    else:
        for value in closed_dates:
            try:
                date.fromisoformat(value)
            except (TypeError, ValueError):
                problems.append(f"closed_dates: {value!r} is not a YYYY-MM-DD date")
    return problems


def policy_problems(*, conditions: Any, targets: Any, warn_at_percent: Any) -> list[str]:
    problems: list[str] = []
    if not isinstance(conditions, Mapping):
        problems.append("conditions: must be an object")
    else:
        for key, allowed in conditions.items():
            if key not in CONDITIONS:
                problems.append(f"conditions: {key!r} is not one of {', '.join(sorted(CONDITIONS))}")
            elif not isinstance(allowed, list) or not allowed:
                problems.append(f"conditions.{key}: must be a non-empty list")
            elif key == "priority" and set(allowed) - set(PRIORITIES):
                problems.append(f"conditions.priority: unknown {sorted(set(allowed) - set(PRIORITIES))}")
            elif key == "visibility" and set(allowed) - {"public", "private"}:
                problems.append("conditions.visibility: only public and private")
    if not isinstance(targets, Mapping) or not targets:
        problems.append('targets: needs minutes per priority, e.g. {"normal": {"first_response": 240}}')
    else:
        for priority, per_metric in targets.items():
            if priority not in PRIORITIES:
                problems.append(f"targets: {priority!r} is not a priority ({', '.join(PRIORITIES)})")
                continue
            if not isinstance(per_metric, Mapping):
                problems.append(f"targets.{priority}: must be an object of minutes")
                continue
            for metric, minutes in per_metric.items():
                if metric not in METRICS:
                    problems.append(f"targets.{priority}: {metric!r} is not one of {', '.join(METRICS)}")
                elif isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0:
                    problems.append(f"targets.{priority}.{metric}: must be a positive number of minutes")
    if isinstance(warn_at_percent, bool) or not isinstance(warn_at_percent, int) or not 1 <= warn_at_percent <= 99:
        problems.append("warn_at_percent: must be a whole number from 1 to 99")
    return problems
