"""Reading incidents, always scoped: an agent counts and sees only the linked tickets of their groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from omnidesk.routing.selectors import user_is_manager
from omnidesk.tickets.models import Ticket
from omnidesk.tickets.selectors import ticket_list_for_user

from .models import BulkDelivery, BulkReply, Incident, IncidentTicket

_OPEN_TICKET = [Ticket.Status.NEW, Ticket.Status.OPEN, Ticket.Status.PENDING, Ticket.Status.ON_HOLD]


def incident_list_for_user(*, user: Any) -> QuerySet[Incident]:
    """Managers see every incident; agents the confirmed ones (active or resolved), never suggestions."""
    qs = Incident.objects.order_by("-opened_at", "-pk")
    if user_is_manager(user):
        return qs
    return qs.filter(status__in=[Incident.Status.ACTIVE, Incident.Status.RESOLVED])


def incident_links_for_user(*, incident: Incident, user: Any) -> QuerySet[IncidentTicket]:
    visible = ticket_list_for_user(user=user).values("pk")
    return (
        IncidentTicket.objects.filter(incident=incident, ticket_id__in=visible)
        .select_related("ticket", "ticket__customer", "ticket__origin_account")
        .order_by("linked_at", "pk")
    )


@dataclass(frozen=True)
class ChannelCount:
    channel: str
    tickets: int
    answered: int
    still_open: int


def incident_channel_counts(*, incident: Incident, user: Any) -> list[ChannelCount]:
    """Linked tickets per channel that this user may see: how many, answered, still open."""
    rows = (
        incident_links_for_user(incident=incident, user=user).order_by().values("channel")
        .annotate(
            n=Count("pk"),
            answered=Count("pk", filter=Q(ticket__first_response_at__isnull=False)),
            still_open=Count("pk", filter=Q(ticket__status__in=_OPEN_TICKET)),
        )
        .order_by("channel")
    )
    return [ChannelCount(r["channel"], r["n"], r["answered"], r["still_open"]) for r in rows]


def incidents_for_banner(*, user: Any) -> list[dict[str, Any]]:
    """What the queue and manager pages show: open incidents (managers also suggestions) with live counts."""
    statuses = [Incident.Status.ACTIVE] + ([Incident.Status.SUGGESTED] if user_is_manager(user) else [])
    out = []
    for incident in Incident.objects.filter(status__in=statuses).order_by("-opened_at", "-pk")[:10]:
        counts = incident_channel_counts(incident=incident, user=user)
        out.append({"incident": incident, "counts": counts, "total": sum(c.tickets for c in counts)})
    return out


def bulk_reply_summary(*, bulk: BulkReply, user: Any) -> dict[str, dict[str, int]]:
    """Outcomes per channel of one bulk reply, over the tickets this user may see."""
    visible = ticket_list_for_user(user=user).values("pk")
    rows = (
        BulkDelivery.objects.filter(bulk=bulk, ticket_id__in=visible).values("channel", "outcome")
        .annotate(n=Count("pk")).order_by("channel", "outcome")
    )
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["channel"], {})[r["outcome"]] = r["n"]
    return out
