"""The managers' dashboard: channel health, teams and capacity; configuration stays in the admin."""

from __future__ import annotations

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from omnidesk.routing.models import Agent, Group
from omnidesk.tickets.models import Ticket

from .access import desk_page
from .context import header
from .selectors import channel_health

_OPEN = [Ticket.Status.NEW, Ticket.Status.OPEN, Ticket.Status.PENDING, Ticket.Status.ON_HOLD]


@desk_page(managers_only=True)
def manage(request: HttpRequest) -> HttpResponse:
    agents = (
        Agent.objects.select_related("user").prefetch_related("groups")
        .annotate(load=Count("user__assigned_tickets", filter=Q(user__assigned_tickets__status__in=_OPEN)))
        .order_by("user__username")
    )
    groups = Group.objects.annotate(
        agent_count=Count("agents", distinct=True),
        open_tickets=Count("tickets", filter=Q(tickets__status__in=[Ticket.Status.NEW, Ticket.Status.OPEN]), distinct=True),
    )
    return render(request, "workspace/manage.html", {
        "health": channel_health(), "agents": agents, "groups": groups, **header(request),
    })
