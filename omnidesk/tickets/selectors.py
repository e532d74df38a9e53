"""Reading tickets, always scoped to what the user may see."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models import QuerySet, prefetch_related_objects

from omnidesk import rows
from omnidesk.routing.selectors import user_group_ids, user_is_manager

from .models import Message, OutboundMessage, Ticket, TicketEvent


def ticket_list_for_user(*, user: Any) -> QuerySet[Ticket]:
    """Managers see every ticket; agents only their groups' tickets; anyone else nothing."""
    qs = Ticket.objects.select_related("customer", "origin_account", "assignee", "group")
    if user_is_manager(user):
        return qs
    groups = user_group_ids(user)
    if not groups:
        return qs.none()
    return qs.filter(group_id__in=groups)


#: the rows a ticket's detail shows besides its own, read with it by ticket_for_user
SHOWN_WITH_TICKET = ("customer", "origin_account", "assignee", "group", "sla_policy")

#: PostgreSQL's bigint: a larger id in the URL finds nothing, as the ORM's lookup does
_MAX_ID = 2**63 - 1


def ticket_for_user(*, user: Any, pk: object) -> Ticket | None:
    """The ticket `pk` with its customer, origin account, assignee, group and SLA policy, if `user` may see
    it (the rule of ticket_list_for_user); None otherwise, and for an id that is no number.

    On PostgreSQL one statement built once per process and prepared: every ticket request (detail, solve, reply, note)
    read it through the ORM, whose compiling of the scoped six-table query cost more CPU than running it,
    after a query of its own for the agent's groups (bench/load.py, docs/benchmarks.md)."""
    try:
        ticket_id = int(str(pk))
    except ValueError:
        return None
    if connection.vendor != "postgresql":  # rows.instances converts only what PostgreSQL's driver leaves undone
        return ticket_list_for_user(user=user).select_related("sla_policy").filter(pk=ticket_id).first()
    manager = user_is_manager(user)
    agent = None if manager else getattr(user, "agent", None)
    if not 0 < ticket_id <= _MAX_ID or not (manager or agent is not None):
        return None
    params = [ticket_id] if manager else [ticket_id, agent.pk]
    found = rows.select_with(Ticket, SHOWN_WITH_TICKET, _ticket_where(scoped=not manager), params)
    return found[0] if found else None


@functools.cache
def _ticket_where(*, scoped: bool) -> str:
    """The ticket by id (alias m: rows.select_sql) and, for an agent, only in one of their groups."""
    from omnidesk.routing.models import Agent

    if not scoped:
        return 'm."id" = %s'
    groups = Agent._meta.get_field("groups")
    return (f'm."id" = %s AND m."{Ticket._meta.get_field("group").column}" IN (SELECT g."{groups.m2m_reverse_name()}"'
            f' FROM "{groups.m2m_db_table()}" g WHERE g."{groups.m2m_column_name()}" = %s)')


def ticket_messages(*, ticket: Ticket) -> list[Message]:
    """The ticket's messages, oldest first, with their author identity, agent, channel account, outbox row
    and attachments.

    On PostgreSQL the messages and what they show come in one prepared statement built once per process:
    compiling the ORM's five-table query was a large part of every ticket answer (a solve's, a detail's)."""
    if connection.vendor != "postgresql":
        return list(
            Message.objects.filter(ticket=ticket)
            .select_related("author_identity", "author_user", "account", "outbound")
            .prefetch_related("attachments")
            .order_by("sent_at", "pk")
        )
    with rows.prepared_cursor() as cursor:
        cursor.execute(_messages_sql(), [ticket.pk])
        found = cursor.fetchall()
    forward = [Message._meta.get_field(name) for name in _MESSAGE_SHOWS]
    outbound = OutboundMessage._meta.get_field("message")
    messages = []
    for row in found:
        message, sent = rows.with_related(row, Message, forward, OutboundMessage)
        outbound.remote_field.set_cached_value(message, sent)  # None: no outbox row, as select_related leaves it
        if sent is not None:
            outbound.set_cached_value(sent, message)
        messages.append(message)
    prefetch_related_objects(messages, "attachments")
    return messages


#: the rows each message shows besides its own (and its outbox row, the reverse of OutboundMessage.message)
_MESSAGE_SHOWS = ("author_identity", "author_user", "account")


@functools.cache
def _messages_sql() -> str:
    selected, joins = rows.related_joins([Message._meta.get_field(name) for name in _MESSAGE_SHOWS])
    outbound = OutboundMessage._meta
    sent_at = Message._meta.get_field("sent_at").column
    return (f'SELECT {rows.columns(Message, "m")}, {selected}, {rows.columns(OutboundMessage, "o")} FROM "{Message._meta.db_table}" m'
            f'{joins} LEFT JOIN "{outbound.db_table}" o ON o."{outbound.get_field("message").column}" = m."id"'
            f' WHERE m."{Message._meta.get_field("ticket").column}" = %s ORDER BY m."{sent_at}", m."id"')


def ticket_events(*, ticket: Ticket) -> list[TicketEvent]:
    """The ticket's audit trail, oldest first, with each event's agent: on PostgreSQL one prepared statement,
    built once per process, as ticket_messages."""
    if connection.vendor != "postgresql":
        return list(ticket.events.select_related("actor_user").order_by("at", "pk"))
    meta = TicketEvent._meta
    return rows.select_with(TicketEvent, ("actor_user",), f'm."{meta.get_field("ticket").column}" = %s ORDER BY m."at", m."id"',
                            [ticket.pk])
