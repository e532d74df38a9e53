"""SLA deadlines on tickets: chosen policy, first/next response and resolution due, warnings and breaches."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holiday_data
from django.db import connection, transaction
from django.utils import timezone

from omnidesk.reports.facts import report_facts_refresh
from omnidesk.rows import rows_update, select_with
from omnidesk.tickets.models import Message, Ticket, TicketEvent

from .businesstime import BusinessCalendar
from .models import WEEKDAYS, Calendar, Policy

METRICS = ("first_response", "next_response", "resolution")
ACTIVE = (Ticket.Status.NEW, Ticket.Status.OPEN)
PAUSED = (Ticket.Status.PENDING, Ticket.Status.ON_HOLD)
STOPPED = (Ticket.Status.SOLVED, Ticket.Status.CLOSED)

_calendars: dict[tuple, BusinessCalendar] = {}
#: active policies loaded once for a batch of events (see `policies_loaded_once`)
_cached_policies: contextvars.ContextVar[list[Policy] | None] = contextvars.ContextVar("sla_policies", default=None)


@contextlib.contextmanager
def policies_loaded_once() -> Iterator[None]:
    """Within this block (one apply batch, one transaction) active policies are read once, on
    PostgreSQL by a statement built once (compiling the ORM's query cost more than running it)."""
    if connection.vendor == "postgresql":
        policies = select_with(Policy, ("calendar",), 'm."active" ORDER BY m."position", m."id"', [])
    else:
        policies = list(Policy.objects.filter(active=True).select_related("calendar"))
    token = _cached_policies.set(policies)
    try:
        yield
    finally:
        _cached_policies.reset(token)


def business_calendar(calendar: Calendar | None) -> BusinessCalendar:
    if calendar is None:
        return _ALWAYS_OPEN
    key = (calendar.pk, calendar.timezone, repr(calendar.hours), calendar.holiday_country,
           calendar.holiday_subdivision, repr(calendar.closed_dates))
    cached = _calendars.get(key)
    if cached is None:
        cached = _calendars[key] = _build(calendar)
    return cached


def _build(calendar: Calendar) -> BusinessCalendar:
    hours = {}
    for index, day in enumerate(WEEKDAYS):
        hours[index] = tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in calendar.hours.get(day, []))
    closed = {date.fromisoformat(d) for d in calendar.closed_dates}
    if calendar.holiday_country:
        this_year = timezone.now().year
        years = range(this_year - 2, this_year + 3)
        closed |= set(
            holiday_data.country_holidays(calendar.holiday_country, subdiv=calendar.holiday_subdivision or None, years=years)
        )
    return BusinessCalendar(tz=ZoneInfo(calendar.timezone), hours=hours, holidays=frozenset(closed))


_ALWAYS_OPEN = BusinessCalendar.always_open()


def _ticket_visibility(ticket: Ticket) -> str:
    last = (
        Message.objects.filter(ticket=ticket, direction=Message.Direction.INBOUND)
        .order_by("-sent_at", "-pk")
        .values_list("visibility", flat=True)
        .first()
    )
    return last or "private"


def policy_for_ticket(
    ticket: Ticket, policies: list[Policy] | None = None, visibility: str | None = None
) -> tuple[Policy | None, str]:
    """The first active policy whose conditions all hold, and why it matched (a rule's choice wins).

    `visibility`: that of the ticket's last inbound message when the caller has it in hand (a
    ticket not saved yet has no messages to ask).
    """
    if ticket.sla_policy_override_id:
        override = ticket.sla_policy_override
        if override is not None and override.active:
            return override, "chosen by a routing rule"
    # Facts that cost a query are looked up only when some policy asks for them.
    lookups = {
        "priority": lambda: ticket.priority,
        "groups": lambda: ticket.group_id,
        "channels": lambda: ticket.origin_account.kind if ticket.origin_account_id else "",
        "visibility": lambda: visibility or _ticket_visibility(ticket),
        "customer_tags": lambda: sorted(set(ticket.tags) | set(ticket.customer.tags if ticket.customer_id else [])),
    }
    return _first_match(policies if policies is not None else Policy.objects.filter(active=True).select_related("calendar"), lookups)


def _first_match(policies: Iterable[Policy], lookups: dict[str, Callable[[], object]]) -> tuple[Policy | None, str]:
    facts: dict[str, object] = {}
    for policy in policies:
        reasons = []
        ok = True
        for key, allowed in policy.conditions.items():
            if key not in facts:
                facts[key] = lookups[key]() if key in lookups else None
            value: object = facts[key]
            if key == "customer_tags":
                hit = bool(set(value) & set(allowed))  # type: ignore[call-overload]
            else:
                hit = value in allowed
            if not hit:
                ok = False
                break
            reasons.append(f"{key} {value} in {allowed}")
        if ok:
            return policy, "; ".join(reasons) if reasons else "no conditions (default)"
    return None, "no active policy matches"


@dataclass(frozen=True)
class Announcement:
    metric: str
    kind: str  # warning | breach
    due: datetime


def sla_recompute(
    *,
    ticket: Ticket,
    now: datetime | None = None,
    save: bool = True,
    policies: list[Policy] | None = None,
    also_save: list[str] = (),  # type: ignore[assignment]
    visibility: str | None = None,
) -> list[Announcement]:
    """Recompute every deadline of `ticket` and announce warnings/breaches that are now due.

    `also_save` names other ticket fields the caller changed, written in the same UPDATE.
    """
    now = now or timezone.now()
    policy, reason = policy_for_ticket(ticket, policies if policies is not None else _cached_policies.get(), visibility)
    ticket.sla_policy = policy
    ticket.sla_reason = reason[:300]
    fresh = _clocks(ticket, policy, business_calendar(policy.calendar if policy else None), now)
    if save:
        rows_update([ticket], [*_SLA_FIELDS, *also_save, "updated_at"])
        TicketEvent.objects.bulk_create(_announcement_events(ticket, fresh))
    return fresh


def _clocks(ticket: Any, policy: Policy | None, cal: BusinessCalendar, now: datetime) -> list[Announcement]:
    """Run the clocks of `ticket` (a Ticket, or a bulk row with the same attributes) under `policy`:
    sets its deadlines, outcomes and next check, and returns the warnings/breaches now due."""
    targets = (policy.targets.get(ticket.priority) if policy else None) or {}
    pct = (policy.warn_at_percent if policy else 80) / 100

    # resolution clock: runs in new/open, pauses in pending/on hold, stops when solved
    if ticket.resolution_running_since is not None and ticket.status not in ACTIVE:
        ticket.resolution_used_s += cal.elapsed(ticket.resolution_running_since, now)
        ticket.resolution_running_since = None
    elif ticket.resolution_running_since is None and ticket.status in ACTIVE:
        ticket.resolution_running_since = now

    checks: dict[str, tuple[datetime, datetime]] = {}  # metric → (warn at, due at)
    first = targets.get("first_response")
    if first and ticket.first_response_at is None and ticket.customer_first_message_at and ticket.status not in STOPPED:
        start = ticket.customer_first_message_at
        checks["first_response"] = (cal.add(start, first * 60 * pct), cal.add(start, first * 60))
    nxt = targets.get("next_response")
    if nxt and ticket.first_response_at and ticket.awaiting_response_since and ticket.status not in STOPPED:
        start = ticket.awaiting_response_since
        checks["next_response"] = (cal.add(start, nxt * 60 * pct), cal.add(start, nxt * 60))
    res = targets.get("resolution")
    if res and ticket.resolution_running_since is not None:
        run = ticket.resolution_running_since
        used = ticket.resolution_used_s
        checks["resolution"] = (cal.add(run, max(res * 60 * pct - used, 0)), cal.add(run, max(res * 60 - used, 0)))

    _freeze_outcomes(ticket, cal, targets)
    ticket.first_response_due_at = checks.get("first_response", (None, None))[1]
    ticket.next_response_due_at = checks.get("next_response", (None, None))[1]
    ticket.resolution_due_at = checks.get("resolution", (None, None))[1]

    announced = set(ticket.sla_announced)
    fresh: list[Announcement] = []
    upcoming: list[datetime] = []
    for metric, (warn_at, due_at) in checks.items():
        for kind, at in (("warning", warn_at), ("breach", due_at)):
            key = f"{metric}:{kind}"
            if key in announced:
                continue
            if at <= now:
                announced.add(key)
                fresh.append(Announcement(metric, kind, due_at))
            else:
                upcoming.append(at)
    running = [d for d in (ticket.first_response_due_at, ticket.next_response_due_at, ticket.resolution_due_at) if d]
    ticket.sla_due_at = min(running) if running else None
    ticket.sla_announced = sorted(announced)
    ticket.sla_next_check_at = min(upcoming) if upcoming else None
    return fresh


def _announcement_events(ticket: Any, fresh: list[Announcement]) -> list[TicketEvent]:
    return [TicketEvent(ticket_id=ticket.pk, actor=TicketEvent.Actor.SYSTEM, **announcement_event(a)) for a in fresh]


def announcement_event(a: Announcement) -> dict[str, str]:
    """The TicketEvent fields that announce a warning or a breach (besides ticket and actor)."""
    return {
        "action": f"sla_{a.kind}", "field": a.metric, "new": a.due.isoformat(),
        "note": f"{a.metric.replace('_', ' ')} {'due' if a.kind == 'warning' else 'overdue since'} {a.due:%Y-%m-%d %H:%M} UTC",
    }


_SLA_FIELDS = [
    "sla_policy", "sla_reason", "first_response_due_at", "next_response_due_at", "resolution_due_at",
    "resolution_used_s", "resolution_running_since", "sla_announced", "sla_next_check_at", "sla_due_at",
    "first_response_business_s", "first_response_met", "resolution_met",
]


def _freeze_outcomes(ticket: Ticket, cal: BusinessCalendar, targets: dict) -> None:
    """Record, once, how the first response and the resolution went (reports read these)."""
    if ticket.first_response_at and ticket.customer_first_message_at and ticket.first_response_business_s is None:
        ticket.first_response_business_s = cal.elapsed(ticket.customer_first_message_at, ticket.first_response_at)
        if targets.get("first_response"):
            ticket.first_response_met = ticket.first_response_business_s <= targets["first_response"] * 60
    if ticket.status in STOPPED and ticket.resolution_met is None and targets.get("resolution"):
        ticket.resolution_met = ticket.resolution_used_s <= targets["resolution"] * 60
    elif ticket.status not in STOPPED and ticket.resolution_met is not None:
        ticket.resolution_met = None  # reopened: judged again when solved


def sla_customer_message(*, ticket: Ticket, at: datetime, also_save: list[str] = ()) -> list[Announcement]:  # type: ignore[assignment]
    """A customer wrote: the next-response clock starts at their message unless one already runs."""
    fields = list(also_save)
    if ticket.awaiting_response_since is None:
        ticket.awaiting_response_since = at
        fields.append("awaiting_response_since")
    return sla_recompute(ticket=ticket, also_save=fields)


def sla_ticket_opened(*, ticket: Ticket, message: Message) -> list[Announcement]:
    """The deadlines of a ticket not saved yet, opened by the customer's `message`, set in memory so
    the caller writes the ticket with one INSERT (and records the announcements once it has an id)."""
    if not message.automated and ticket.awaiting_response_since is None:
        ticket.awaiting_response_since = message.sent_at
    return sla_recompute(ticket=ticket, save=False, visibility=message.visibility)


def sla_agent_response(*, ticket: Ticket, also_save: list[str] = ()) -> list[Announcement]:  # type: ignore[assignment]
    """An agent answered the customer (a reply or a call-back that reached them)."""
    ticket.awaiting_response_since = None
    also_save = [*also_save, *report_facts_refresh(ticket=ticket)]  # the parity report's per-ticket facts
    ticket.sla_announced = [k for k in ticket.sla_announced if not k.startswith("next_response:")]
    return sla_recompute(ticket=ticket, also_save=[*also_save, "awaiting_response_since"])


def sla_sweep(*, now: datetime | None = None, limit: int = 1000) -> dict[int, list[Announcement]]:
    """Tickets whose next warning or breach has come (one indexed range query), announced once each."""
    now = now or timezone.now()
    out: dict[int, list[Announcement]] = {}
    with transaction.atomic():
        due = list(
            Ticket.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("customer", "origin_account", "sla_policy__calendar")
            .filter(sla_next_check_at__lte=now)
            .order_by("sla_next_check_at")[:limit]
        )
        if not due:
            return out
        from omnidesk.routing.services import rules_after_sla

        from .recompute import announcements_record, sla_fields_write

        with policies_loaded_once():  # read once, not once per due ticket
            for ticket in due:
                if fresh := sla_recompute(ticket=ticket, now=now, save=False):
                    out[ticket.pk] = fresh
                    ticket.updated_at = timezone.now()
            sla_fields_write(due)  # one statement for all, then what follows from the announcements
            announcements_record([(pk, a) for pk, items in out.items() for a in items])
            Ticket.objects.filter(pk__in=list(out)).update(updated_at=timezone.now())
            for ticket in due:
                if ticket.pk in out:
                    rules_after_sla(ticket=ticket, announcements=out[ticket.pk])
        if out:
            from omnidesk.workspace import live

            changes = {pk: f"sla_{items[-1].kind}" for pk, items in out.items()}
            transaction.on_commit(lambda: live.tickets_changed(changes))
    return out


def calendar_save(*, calendar: Calendar | None = None, **fields: object) -> Calendar:
    """Create or change a calendar; every problem is reported at once (validation.Invalid)."""
    from .validation import Invalid, calendar_problems

    calendar = calendar or Calendar()
    for key, value in fields.items():
        setattr(calendar, key, value)
    problems = calendar_problems(
        timezone=calendar.timezone, hours=calendar.hours, holiday_country=calendar.holiday_country,
        holiday_subdivision=calendar.holiday_subdivision, closed_dates=calendar.closed_dates,
    )
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        calendar.save()
        _recompute_owed()
    return calendar


def calendar_delete(calendar: Calendar) -> None:
    """Delete a calendar no policy uses (ProtectedError otherwise); open tickets are recomputed."""
    with transaction.atomic():
        calendar.delete()
        _recompute_owed()


def policy_save(*, policy: Policy | None = None, **fields: object) -> Policy:
    """Create or change a policy; open tickets are recomputed in the background."""
    from .validation import Invalid, policy_problems

    policy = policy or Policy()
    for key, value in fields.items():
        setattr(policy, key, value)
    problems = policy_problems(conditions=policy.conditions, targets=policy.targets, warn_at_percent=policy.warn_at_percent)
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        policy.save()
        _recompute_owed()
    return policy


def policy_delete(policy: Policy) -> None:
    """Delete a policy; its tickets get the next matching one (or none) when open tickets are recomputed."""
    with transaction.atomic():
        policy.delete()
        _recompute_owed()


def _recompute_owed() -> None:
    """Recompute every open ticket in the background, durably (the sweep runs it if the nudge is lost)."""
    from .recompute import recompute_request

    recompute_request()


def sla_recompute_open(*, batch: int = 1000) -> int:
    """Recompute every ticket that is not solved or closed (after a policy or calendar change)."""
    from .recompute import open_tickets_recompute

    return open_tickets_recompute(batch=batch)


def sla_remaining(ticket: Ticket, now: datetime | None = None) -> dict[str, dict[str, object]]:
    """Each deadline with the time left (negative = overdue), for the API and the queue."""
    now = now or timezone.now()
    out: dict[str, dict[str, object]] = {}
    for metric, due in (
        ("first_response", ticket.first_response_due_at),
        ("next_response", ticket.next_response_due_at),
        ("resolution", ticket.resolution_due_at),
    ):
        if due is not None:
            out[metric] = {"due_at": due, "seconds_left": round((due - now).total_seconds()), "breached": due <= now}
    return out


__all__ = [
    "Announcement",
    "business_calendar",
    "calendar_delete",
    "calendar_save",
    "policies_loaded_once",
    "policy_delete",
    "policy_for_ticket",
    "policy_save",
    "sla_agent_response",
    "sla_customer_message",
    "sla_recompute",
    "sla_recompute_open",
    "sla_remaining",
    "sla_sweep",
    "sla_ticket_opened",
]
