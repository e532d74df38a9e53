"""The single queue: one ordering for everyone, and "next ticket" without double-claiming.

Order: earliest SLA deadline first (no deadline last), then priority (urgent > high > normal >
low), then age. A claim locks the most urgent claimable row with SELECT … FOR UPDATE SKIP
LOCKED (PostgreSQL), so concurrent agents never get the same ticket and never wait on each
other; on SQLite the IMMEDIATE transaction mode serializes writers, which is equally safe.
The partial index `routing_ticket_claimable` (migration routing 0003) holds exactly the
claimable rows in this order, so a claim reads one index entry, however many were claimed.
On PostgreSQL the claims a process's threads make at the same moment are made together: ONE
statement (pick and lock, capacity checks, assign, audit events, the related rows the API shows),
prepared once per connection, for all of them (agents of other groups than the first's in a
following round), and so is a claim that finds nothing or an agent at capacity; the live update
needs no further query (the claim returns the tickets' groups).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import BooleanField, F, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from omnidesk import rows
from omnidesk.grouping import GroupWriter
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
    if connection.vendor == "postgresql":
        return _claim_grouped(user=user, agent=agent)
    ticket = _claim_locked(user=user, agent=agent)
    if ticket is not None:
        _announce([ticket])
    return ticket


def _announce(claimed: Sequence[Ticket]) -> None:
    """After commit, tell the agents who may see them that these tickets were claimed."""
    teams = {ticket.pk: ticket.group_id for ticket in claimed}
    transaction.on_commit(lambda: live.tickets_changed(dict.fromkeys(teams, "claimed"), teams=teams))


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
def _claim_sql(*, scoped: bool, skills: int) -> str:
    """One statement (PostgreSQL) claiming for a round of agents of the same scope kind: pick and lock
    as many claimable rows in queue order as there are agents below their capacity (the
    routing_ticket_claimable index), assign them, the first row to the agent who asked first, and
    record the events. Agents are the arrays' elements, in order (ids, capacities or NULL for none,
    event notes); the scope is the first agent's groups (`scoped`) and the `skills` skill tags passed
    after the arrays, which every agent of the round shares. An agent whose groups differ from the
    first one's claims nothing here (`other`: the caller claims for it in a later round).
    Parameters: ids, capacities, notes, [skills…], now, now. One row per agent, in order: at capacity,
    other groups, then the claimed ticket's columns and its related rows' (NULL when nothing was claimed).
    It writes the same event rows as ticket_event_record (whose other effect, counting transfers, a
    claim never has)."""
    ticket, event = Ticket._meta.db_table, TicketEvent._meta.db_table
    held = ", ".join(f"'{s}'" for s in LOAD_STATUSES)
    claimable = ", ".join(f"'{s}'" for s in CLAIMABLE)
    groups, scope, other = "NULL::bigint[]", "", "false"
    if scoped:
        through = Agent.groups.through._meta.db_table
        groups = (f"(SELECT array_agg(g.group_id ORDER BY g.group_id) FROM {through} g"
                  f" JOIN {Agent._meta.db_table} a ON a.id = g.agent_id WHERE a.user_id = w.u)::bigint[]")
        scope = f' AND "{ticket}"."group_id" = ANY((SELECT gs FROM who WHERE n = 1)::bigint[]) AND {_skills_sql(skills)}'
        other = "who.gs IS DISTINCT FROM (SELECT gs FROM who WHERE n = 1)"
    columns = rows.columns((Ticket, CLAIMED_FIELDS), f'"{ticket}"')
    return (
        f"WITH who AS (SELECT w.n, w.u, w.note, {groups} AS gs,"
        f" w.cap IS NOT NULL AND (SELECT count(*) FROM (SELECT FROM {ticket} held WHERE held.assignee_id = w.u"
        f" AND held.status IN ({held}) ORDER BY held.assignee_id, held.status LIMIT w.cap) AS upto) >= w.cap AS at_cap"
        " FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) WITH ORDINALITY AS w(u, cap, note, n)),"
        f" checked AS (SELECT who.*, {other} AS other FROM who),"
        " eligible AS (SELECT n, u, note, row_number() OVER (ORDER BY n) AS k FROM checked WHERE NOT at_cap AND NOT other),"
        f' picked AS (SELECT id, row_number() OVER (ORDER BY due ASC NULLS LAST, rank, created_at, id) AS k FROM'
        f' (SELECT "{ticket}"."id", "{ticket}"."sla_due_at" AS due, {PRIORITY_RANK_SQL} AS rank, "{ticket}"."created_at"'
        f' FROM "{ticket}" WHERE "{ticket}"."assignee_id" IS NULL AND "{ticket}"."status" IN ({claimable}){scope}'
        f' ORDER BY "{ticket}"."sla_due_at" ASC NULLS LAST, {PRIORITY_RANK_SQL}, "{ticket}"."created_at", "{ticket}"."id"'
        ' LIMIT (SELECT count(*) FROM eligible) FOR UPDATE SKIP LOCKED) AS first),'
        f' claimed AS (UPDATE "{ticket}" SET "assignee_id" = eligible.u, "updated_at" = %s FROM picked JOIN eligible USING (k)'
        f' WHERE "{ticket}"."id" = picked.id RETURNING eligible.n AS claimed_for, eligible.note, {columns}),'
        f' logged AS (INSERT INTO "{event}" (ticket_id, at, actor, actor_user_id, action, field, old, new, message_id, note)'
        f" SELECT id, %s, '{TicketEvent.Actor.AGENT}', assignee_id, 'claimed', 'assignee', NULL, to_jsonb(assignee_id),"
        " NULL, note FROM claimed)"
        f" SELECT checked.at_cap, checked.other, {rows.columns((Ticket, CLAIMED_FIELDS), 'claimed')}, {_related_columns()}"
        f" FROM checked LEFT JOIN claimed ON claimed.claimed_for = checked.n {_related_joins()} ORDER BY checked.n"
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


def _claim_key(user: Any, agent: Agent | None) -> tuple[bool, tuple[str, ...]]:
    """What a round of claims shares: whether it is scoped to the agents' groups, and the skills."""
    scoped = not user_is_manager(user)
    return scoped, tuple(sorted(SKILL_PREFIX + s for s in (agent.skills or []))) if scoped and agent is not None else ()


#: a claim's outcome for one agent: the ticket, None for nothing to take, AtCapacity, or the database's error
_Claimed = Ticket | None | AtCapacity | DatabaseError


def _claims_in_rounds(claims: Sequence[tuple[Any, Agent | None]]) -> list[_Claimed]:
    """Claim for every (user, agent) at once: a statement per round of those who share a scope kind
    (`_claim_key`) and groups, each agent at most once a round, in the order they asked. Usually one
    round; the first agent of each round always gets its answer, so it ends. A round that fails is
    the error of its agents and of those still waiting, not of those an earlier round (committed) served."""
    outcome: dict[int, _Claimed] = {}
    keys = [_claim_key(user, agent) for user, agent in claims]
    waiting = list(range(len(claims)))
    now = timezone.now()  # the time of all of them: they are made together
    claimed: list[Ticket] = []
    while waiting:
        key, seen, this, later = keys[waiting[0]], set(), [], []  # type: ignore[var-annotated]
        for i in waiting:
            user = claims[i][0]
            if user.pk in seen or keys[i] != key:
                later.append(i)
                continue
            this.append(i)
            seen.add(user.pk)
        try:
            answers = _claim_round([claims[i] for i in this], key, now)
        except DatabaseError as exc:
            if not outcome or not connection.get_autocommit():
                raise  # nothing committed yet, or all of it rolls back with the caller's transaction
            outcome.update(dict.fromkeys(waiting, exc))
            break
        for i, (full, other, row) in zip(this, answers):
            if other:
                later.append(i)
            elif row[0] is not None:
                ticket = outcome[i] = _ticket_from_row(row)
                ticket.assignee = claims[i][0]
                claimed.append(ticket)
            else:
                agent = claims[i][1]
                outcome[i] = _at_capacity(agent) if full and agent is not None else None
        waiting = sorted(later)
    if claimed:
        _announce(claimed)
    return [outcome[i] for i in range(len(claims))]


def _claim_round(
    claims: Sequence[tuple[Any, Agent | None]], key: tuple[bool, tuple[str, ...]], now: datetime,
) -> list[tuple[bool, bool, list[Any]]]:
    """One statement (`_claim_sql`): per claim, (at capacity, other groups than the first's, the row)."""
    scoped, skills = key
    params: list[Any] = [
        [user.pk for user, _ in claims],
        [agent.capacity if agent is not None else None for _, agent in claims],
        [_claim_note(user)[:500] for user, _ in claims],
        *skills, now, now,
    ]
    with rows.prepared_cursor() as cursor:
        cursor.execute(_claim_sql(scoped=scoped, skills=len(skills)), params)
        return [(full, other, row) for full, other, *row in cursor.fetchall()]


#: the claims of a process's threads that ask at the same moment, made together (grouping.GroupWriter)
_claims_together: GroupWriter[tuple[Any, Agent | None], _Claimed] = GroupWriter(_claims_in_rounds, limit=50)


def _claim_grouped(*, user: Any, agent: Agent | None) -> Ticket | None:
    """PostgreSQL: the claim made with those of the other threads claiming now, one statement and one
    commit for all of them, when autocommitting; inside a transaction, alone (the others' claims must
    not commit or roll back with it)."""
    claim = (user, agent)
    got = (_claims_together.submit(claim) if connection.get_autocommit() else _claims_in_rounds([claim])[0])
    if isinstance(got, (AtCapacity, DatabaseError)):
        raise got
    return got
