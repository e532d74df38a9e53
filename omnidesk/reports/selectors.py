"""Who sees which report, and the tickets behind each figure (the drill-down)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from omnidesk.routing.models import Group
from omnidesk.routing.selectors import user_group_ids, user_is_manager
from omnidesk.tickets.models import Message, Ticket

from .metrics import Scope, scoped_tickets

DEFAULT_DAYS = 30


class ReportInputInvalid(ValueError):
    """A date or parameter the report cannot use; the message says why."""


class GroupNotVisible(LookupError):
    """The group does not exist, or the user is not in it (the same answer, so nothing leaks)."""


def parse_day(value: str, *, name: str) -> datetime:
    """YYYY-MM-DD (midnight in the desk's time zone) or a full ISO 8601 date-time."""
    try:
        if len(value) == 10:
            return timezone.make_aware(datetime.combine(date.fromisoformat(value), time.min))
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReportInputInvalid(f"{name} must be a date YYYY-MM-DD or an ISO 8601 date-time, not {value!r}") from None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def report_scope_for_user(*, user: Any, since: str | None, until: str | None, group: str | None) -> Scope:
    """The range [since, until) and the groups this user may report on (managers: all; agents: theirs)."""
    end = parse_day(until, name="until") if until else timezone.make_aware(
        datetime.combine(timezone.localdate() + timedelta(days=1), time.min)
    )
    start = parse_day(since, name="since") if since else end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise ReportInputInvalid("since must be before until")
    allowed: frozenset[int] | None = None if user_is_manager(user) else frozenset(user_group_ids(user))
    group_ids = allowed
    if group:
        found = Group.objects.filter(pk=int(group)) if group.isdigit() else Group.objects.filter(name=group)
        pk = found.values_list("pk", flat=True).first()
        if pk is None or (allowed is not None and pk not in allowed):
            raise GroupNotVisible(f"there is no group {group!r} you can report on")
        group_ids = frozenset({pk})
    return Scope(since=start, until=end, group_ids=group_ids)


#: drill-down metrics: what each figure of the report counts, as a ticket filter
DRILLDOWN_METRICS = (
    "volume", "answered", "unanswered", "first_response", "first_response_business", "next_response", "resolution",
    "sla_first_response", "sla_first_response_missed", "sla_resolution", "sla_resolution_missed", "reopened",
    "transferred", "public_first", "handed_off", "ingest_lag",
)
#: metrics a `slower_than` (seconds) threshold applies to
_TIMED = {"first_response", "first_response_business", "resolution"}


def _public_first() -> Exists:
    return Exists(Message.objects.filter(
        ticket=OuterRef("pk"), direction=Message.Direction.INBOUND, visibility="public",
        sent_at=OuterRef("customer_first_message_at"),
    ))


def _has_next_response() -> Exists:
    answer = Message.objects.filter(
        ticket=OuterRef(OuterRef("pk")), direction=Message.Direction.OUTBOUND, kind=Message.Kind.MESSAGE,
        automated=False, sent_at__gte=OuterRef("sent_at"),
    )
    return Exists(Message.objects.filter(
        ticket=OuterRef("pk"), direction=Message.Direction.INBOUND, automated=False,
        sent_at__gt=OuterRef("first_response_at"),
    ).filter(Exists(answer)))


def report_tickets(*, scope: Scope, metric: str, channel: str | None = None, slower_than: float | None = None) -> QuerySet[Ticket]:
    """The tickets behind one figure of the report (the same scope and definitions)."""
    if metric not in DRILLDOWN_METRICS:
        raise ReportInputInvalid(f"unknown metric {metric!r}; use one of {', '.join(DRILLDOWN_METRICS)}")
    if slower_than is not None and metric not in _TIMED:
        raise ReportInputInvalid(f"slower_than applies to {', '.join(sorted(_TIMED))} only")
    qs = scoped_tickets(scope=scope)
    if channel and channel != "all":
        qs = qs.filter(origin_account__kind=channel)
    filters: dict[str, Q] = {
        "volume": Q(),
        "answered": Q(first_response_at__isnull=False),
        "unanswered": Q(first_response_at__isnull=True),
        "first_response": Q(first_response_at__isnull=False),
        "first_response_business": Q(first_response_business_s__isnull=False),
        "resolution": Q(solved_at__isnull=False),
        "sla_first_response": Q(first_response_met__isnull=False),
        "sla_first_response_missed": Q(first_response_met=False),
        "sla_resolution": Q(resolution_met__isnull=False),
        "sla_resolution_missed": Q(resolution_met=False),
        "reopened": Q(reopen_count__gt=0),
        "transferred": Q(transfer_count__gt=0),
    }
    if metric in filters:
        qs = qs.filter(filters[metric])
    elif metric == "public_first":
        qs = qs.filter(_public_first())
    elif metric == "handed_off":
        qs = qs.filter(_public_first(), handoff_at__isnull=False)
    elif metric == "next_response":
        qs = qs.filter(first_response_at__isnull=False).filter(_has_next_response())
    elif metric == "ingest_lag":
        qs = qs.filter(Exists(Message.objects.filter(
            ticket=OuterRef("pk"), direction=Message.Direction.INBOUND, sent_at__isnull=False,
        )))
    if slower_than is not None:
        qs = _slower(qs, metric, slower_than)
    return qs.order_by("pk")


def _slower(qs: QuerySet[Ticket], metric: str, seconds: float) -> QuerySet[Ticket]:
    from datetime import timedelta as td

    from django.db.models import DurationField, ExpressionWrapper, F

    if metric == "first_response_business":
        return qs.filter(first_response_business_s__gt=seconds)
    end = "first_response_at" if metric == "first_response" else "solved_at"
    elapsed = ExpressionWrapper(F(end) - F("customer_first_message_at"), output_field=DurationField())
    return qs.annotate(_elapsed=elapsed).filter(_elapsed__gt=td(seconds=seconds))
