"""The single queue: one ordering for everyone, and "next ticket" without double-claiming.

Order: earliest SLA deadline first (no deadline last), then priority (urgent > high > normal >
low), then age. A claim locks the most urgent claimable row with SELECT … FOR UPDATE SKIP
LOCKED (PostgreSQL), so concurrent agents never get the same ticket and never wait on each
other; on SQLite the IMMEDIATE transaction mode serializes writers, which is equally safe.
The partial index `routing_ticket_claimable` (migration routing 0003) holds exactly the
claimable rows in this order, so a claim reads one index entry, however many were claimed.
On PostgreSQL a claim is ONE statement (pick and lock, capacity check, assign, audit event, the
related rows the API shows), prepared once per connection, and so is a claim that finds nothing
or an agent at capacity; its live update needs no further query (the claim returns the ticket's
group).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import BooleanField, F, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from omnidesk import rows
from omnidesk.tickets.audit import ticket_event_record
from omnidesk.tickets.models import Ticket, TicketEvent
from omnidesk.tickets.selectors import ticket_list_for_user
from omnidesk.workspace import live

from .assignment import LOAD_STATUSES, SKILL_PREFIX, agent_load
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


def _skills_sql(count: int) -> str:
    """True when every "skill:" tag of the ticket is among `count` skill tags passed as parameters.

    On PostgreSQL one jsonpath test per row: it runs for every row a claim passes over (those locked by
    other claims too), and a subquery over jsonb_array_elements_text set up a function scan for each."""
    if connection.vendor == "postgresql":
        if not count:
            return f"""NOT jsonb_path_exists("tickets_ticket"."tags", '$[*] ? (@ starts with "{SKILL_PREFIX}")')"""
        held = f"jsonb_build_object('held', jsonb_build_array({', '.join(['%s::text'] * count)}))"
        return (f"""NOT jsonb_path_exists("tickets_ticket"."tags", """
                f"""'$[*] ? (@ starts with "{SKILL_PREFIX}" && !(@ == $held[*]))', {held})""")
    tag = "t.value"
    missing = f" AND {tag} NOT IN ({', '.join(['%s'] * count)})" if count else ""
    return f"""NOT EXISTS (SELECT 1 FROM json_each("tickets_ticket"."tags") AS t WHERE {tag} LIKE '{SKILL_PREFIX}%%'{missing})"""


def _skills_allowed(skills: list[str]) -> RawSQL:
    """True when every "skill:" tag of the ticket is among the agent's skills."""
    tags = [SKILL_PREFIX + s for s in skills]
    return RawSQL(_skills_sql(len(tags)), tags, output_field=BooleanField())


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
    claim = _claim_in_one_statement if connection.vendor == "postgresql" else _claim_locked
    ticket = claim(user=user, agent=agent)
    if ticket is None:
        return None
    team = {ticket.pk: ticket.group_id}
    transaction.on_commit(lambda: live.tickets_changed({ticket.pk: "claimed"}, teams=team))
    return ticket


def _at_capacity(agent: Agent) -> AtCapacity:
    return AtCapacity(f"you already have {agent.capacity} open ticket(s), your capacity; solve or hand one over first")


def _claim_note(user: Any) -> str:
    return f"assignee none → {user.get_username()} (next ticket)"


def _claim_locked(*, user: Any, agent: Agent | None) -> Ticket | None:
    """The portable claim: lock, check capacity, assign, record (SQLite: IMMEDIATE serializes writers)."""
    with transaction.atomic():
        if agent is not None and agent_load(user=user) >= agent.capacity:
            raise _at_capacity(agent)
        qs = Ticket.objects.filter(status__in=CLAIMABLE, assignee__isnull=True)
        if not user_is_manager(user):
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
            old=None, new=user.pk, note=_claim_note(user),
        )
    return ticket


@functools.cache
def _claim_sql(*, scoped: bool, skills: int, capped: bool) -> str:
    """One statement (PostgreSQL): pick and lock the first claimable row in queue order (the
    routing_ticket_claimable index), assign it unless the agent is at capacity, record the event.
    Parameters in order: [user, skills…] user, now, [user, capacity] now, user, new, note, [user, capacity].
    It writes the same event row as ticket_event_record (whose other effect, counting transfers, a
    claim never has). It always returns one row: the ticket's columns are NULL when nothing was
    claimed, and the last column then tells whether the agent is at capacity (counted only in that case)."""
    ticket, event = Ticket._meta.db_table, TicketEvent._meta.db_table
    scope = ""
    if scoped:
        groups = Agent.groups.through._meta.db_table
        scope = (
            f" AND group_id IN (SELECT g.group_id FROM {groups} g JOIN {Agent._meta.db_table} a ON a.id = g.agent_id"
            " WHERE a.user_id = %s)"
            f" AND {_skills_sql(skills)}"
        )
    held = ", ".join(f"'{s}'" for s in LOAD_STATUSES)
    load = f"(SELECT count(*) FROM {ticket} held WHERE held.assignee_id = %s AND held.status IN ({held}))"
    cap = f" AND {load} < %s" if capped else ""
    full = f"CASE WHEN claimed.id IS NULL THEN {load} >= %s END" if capped else "NULL"
    columns = rows.columns((Ticket, CLAIMED_FIELDS), f'"{ticket}"')
    claimable = ", ".join(f"'{s}'" for s in CLAIMABLE)
    return (
        f'WITH picked AS (SELECT "{ticket}"."id" FROM "{ticket}" WHERE "{ticket}"."assignee_id" IS NULL'
        f' AND "{ticket}"."status" IN ({claimable}){scope}'
        f' ORDER BY "{ticket}"."sla_due_at" ASC NULLS LAST, {PRIORITY_RANK_SQL}, "{ticket}"."created_at", "{ticket}"."id"'
        " LIMIT 1 FOR UPDATE SKIP LOCKED),"
        f' claimed AS (UPDATE "{ticket}" SET "assignee_id" = %s, "updated_at" = %s FROM picked'
        f' WHERE "{ticket}"."id" = picked.id{cap} RETURNING {columns}),'
        f' logged AS (INSERT INTO "{event}" (ticket_id, at, actor, actor_user_id, action, field, old, new, message_id, note)'
        f" SELECT id, %s, '{TicketEvent.Actor.AGENT}', %s, 'claimed', 'assignee', NULL, %s::jsonb, NULL, %s FROM claimed)"
        f" SELECT claimed.*, {_related_columns()}, {full} FROM (VALUES (1)) AS one(x)"
        f" LEFT JOIN claimed ON true {_related_joins()}"
    )


#: what a claim returns of the ticket: what the API shows of it (its queue order and SLA clocks included);
#: any other field is read from the database if used
CLAIMED_FIELDS = (
    "id", "subject", "status", "priority", "origin_account", "customer", "assignee", "group", "tags", "created_at",
    "updated_at", "customer_first_message_at", "last_customer_message_at", "first_response_at", "solved_at",
    "closed_at", "reopen_count", "handoff_at", "sla_policy", "sla_reason", "first_response_due_at",
    "next_response_due_at", "resolution_due_at", "sla_due_at",
)
#: the rows it returns with the ticket, each as (field, alias, the fields of it the API shows): the
#: channel account's config and secrets, the policy's conditions and targets stay in the database
_RELATED = (
    ("customer", "cu", ("id", "display_name")),
    ("origin_account", "oa", ("id", "kind", "slug")),
    ("group", "gr", ("id", "name")),
    ("sla_policy", "po", ("id", "name")),
)


def _related_columns() -> str:
    return ", ".join(
        rows.columns((Ticket._meta.get_field(name).related_model, only), alias) for name, alias, only in _RELATED
    )


def _related_joins() -> str:
    joins = []
    for name, alias, _ in _RELATED:
        field = Ticket._meta.get_field(name)
        joins.append(f'LEFT JOIN "{field.related_model._meta.db_table}" {alias} ON {alias}.id = claimed."{field.column}"')
    return " ".join(joins)


def _ticket_from_row(row: Sequence[Any]) -> Ticket:
    return rows.with_related(
        row, (Ticket, CLAIMED_FIELDS), [Ticket._meta.get_field(name) for name, _, _ in _RELATED],
        related=[only for _, _, only in _RELATED],
    )[0]


def _claim_in_one_statement(*, user: Any, agent: Agent | None) -> Ticket | None:
    """The claim as one autocommitted statement: one round trip, no transaction to open or close,
    also when there is nothing to claim or the agent is at capacity."""
    scoped = not user_is_manager(user)
    skills = [SKILL_PREFIX + s for s in (agent.skills or [])] if scoped and agent is not None else []
    sql = _claim_sql(scoped=scoped, skills=len(skills), capped=agent is not None)
    now = timezone.now()
    params: list[Any] = [user.pk, *skills] if scoped else []
    params += [user.pk, now, *([user.pk, agent.capacity] if agent is not None else [])]
    params += [now, user.pk, json.dumps(user.pk), _claim_note(user)[:500]]
    params += [user.pk, agent.capacity] if agent is not None else []
    with rows.prepared_cursor() as cursor:
        cursor.execute(sql, params)
        *row, full = cursor.fetchone()
    if row[0] is None:
        if agent is not None and full:
            raise _at_capacity(agent)
        return None
    ticket = _ticket_from_row(row)
    ticket.assignee = user
    return ticket
