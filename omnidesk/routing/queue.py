"""The single queue: one ordering for everyone, and "next ticket" without double-claiming.

Order: earliest SLA deadline first (no deadline last), then priority (urgent > high > normal >
low), then age. A claim locks the most urgent claimable row with SELECT … FOR UPDATE SKIP
LOCKED (PostgreSQL), so concurrent agents never get the same ticket and never wait on each
other; on SQLite the IMMEDIATE transaction mode serializes writers, which is equally safe.
The partial index `routing_ticket_claimable` (migration routing 0003) holds exactly the
claimable rows in this order, so a claim reads one index entry, however many were claimed.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import BooleanField, F, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from omnidesk.tickets.audit import ticket_event_record
from omnidesk.tickets.models import Ticket, TicketEvent
from omnidesk.tickets.selectors import ticket_list_for_user

from .assignment import SKILL_PREFIX, agent_load
from .models import Agent
from .selectors import user_is_manager

CLAIMABLE = (Ticket.Status.NEW, Ticket.Status.OPEN)
#: must stay identical to the expression in the routing_ticket_claimable index
PRIORITY_RANK_SQL = (
    "CASE \"tickets_ticket\".\"priority\" WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END"
)
QUEUE_ORDER = (F("sla_due_at").asc(nulls_last=True), RawSQL(PRIORITY_RANK_SQL, ()).asc(), "created_at", "pk")


class AtCapacity(Exception):
    """The agent already holds as many open tickets as their capacity allows."""


def _skills_allowed(skills: list[str]) -> RawSQL:
    """True when every "skill:" tag of the ticket is among the agent's skills."""
    tags = [SKILL_PREFIX + s for s in skills]
    if connection.vendor == "postgresql":
        source, tag = "jsonb_array_elements_text(\"tickets_ticket\".\"tags\") AS t(tag)", "t.tag"
    else:
        source, tag = "json_each(\"tickets_ticket\".\"tags\") AS t", "t.value"
    missing = f" AND {tag} NOT IN ({', '.join(['%s'] * len(tags))})" if tags else ""
    sql = f"NOT EXISTS (SELECT 1 FROM {source} WHERE {tag} LIKE 'skill:%%'{missing})"
    return RawSQL(sql, tags, output_field=BooleanField())


def _scope(qs: QuerySet[Ticket], user: Any) -> QuerySet[Ticket]:
    if user_is_manager(user):
        return qs
    agent = getattr(user, "agent", None)
    return qs.filter(_skills_allowed(list(agent.skills or []) if agent else []))


def queue_for_user(*, user: Any) -> QuerySet[Ticket]:
    """What the user may take, most urgent first: their groups' new/open tickets that are
    unassigned or already theirs, needing no skill they lack (managers: every group)."""
    qs = ticket_list_for_user(user=user).select_related("sla_policy").filter(status__in=CLAIMABLE)
    qs = qs.filter(Q(assignee__isnull=True) | Q(assignee=user))
    return _scope(qs, user).order_by(*QUEUE_ORDER)


def queue_claim_next(*, user: Any) -> Ticket | None:
    """Atomically assign the user the most urgent unassigned ticket they may take (None: nothing).

    Raises AtCapacity when they already hold `capacity` open tickets.
    """
    agent = getattr(user, "agent", None)
    manager = user_is_manager(user)
    with transaction.atomic():
        if agent is not None and agent_load(user=user) >= agent.capacity:
            raise AtCapacity(
                f"you already have {agent.capacity} open ticket(s), your capacity; solve or hand one over first"
            )
        qs = Ticket.objects.filter(status__in=CLAIMABLE, assignee__isnull=True)
        if not manager:
            # the agent's groups as a subquery: one round trip fewer per claim
            qs = qs.filter(group_id__in=Agent.groups.through.objects.filter(agent__user_id=user.pk).values("group_id"))
        ticket = (
            _scope(qs, user)
            .select_related("customer", "origin_account", "group", "sla_policy")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by(*QUEUE_ORDER)
            .first()
        )
        if ticket is None:
            return None
        ticket.assignee = user
        ticket.updated_at = timezone.now()
        Ticket.objects.filter(pk=ticket.pk).update(assignee=user, updated_at=ticket.updated_at)
        ticket_event_record(
            ticket=ticket, action="claimed", actor=TicketEvent.Actor.AGENT, actor_user=user, field="assignee",
            old=None, new=user.pk, note=f"assignee none → {user.get_username()} (next ticket)",
        )
        ticket_id = ticket.pk
        transaction.on_commit(lambda: _broadcast(ticket_id))
    return ticket


def _broadcast(ticket_id: int) -> None:
    from omnidesk.workspace import live

    live.tickets_changed({ticket_id: "claimed"})
