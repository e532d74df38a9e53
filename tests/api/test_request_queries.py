"""What the agents' busiest requests ask the database: reply and solve (bench/load.py's mix).

The statements pinned are PostgreSQL's: there the fixed-shape reads are statements built once per process
(omnidesk/tickets/selectors.py); other databases take the ORM's queries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.test import TestCase

from omnidesk.workspace import live
from tests.conftest import statements_sent

from .conftest import client_for


def _tables_read_alone(call) -> list[str]:  # type: ignore[no-untyped-def]
    """The tables the request read with a query of their own (FROM that table), in order."""
    with statements_sent() as seen:
        response = call()
    assert response.status_code < 300, response.content
    return [sql.split(' FROM "', 1)[1].split('"', 1)[0] for sql in seen if sql.startswith("SELECT") and ' FROM "' in sql]


def test_solving_an_assigned_ticket_reads_its_related_rows_with_it(postgres, agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    client = client_for(agent)
    assert client.patch(f"/api/v1/tickets/{ticket.pk}/", {"assignee": agent.pk}, format="json").status_code == 200
    read = _tables_read_alone(lambda: client.patch(f"/api/v1/tickets/{ticket.pk}/", {"status": "solved"}, format="json"))
    for table in ("customers_customer", "plugins_channelaccount", "routing_group", "auth_user"):
        assert table not in read, read  # read with the ticket, the agent's groups too
    assert read.count("tickets_ticket") == 2  # the scoped read, then the row lock


def test_a_solve_writes_the_ticket_once_and_tells_its_team_without_asking(postgres, agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    seen = async_to_sync(_solve_heard_by_its_team)(client_for(agent), ticket)
    updates = [sql for sql in seen if sql.startswith('UPDATE "tickets_ticket"')]
    assert len(updates) == 1 and '"status"' in updates[0] and '"resolution_used_s"' in updates[0], updates
    statements = [sql for sql in seen if "SAVEPOINT" not in sql]
    assert len(statements) == 8, statements  # ticket, lock, event, UPDATE, policies; messages, files, events
    ticket.refresh_from_db()
    assert ticket.status == "solved" and ticket.solved_at is not None and ticket.resolution_running_since is None


async def _solve_heard_by_its_team(client, ticket) -> list[str]:  # type: ignore[no-untyped-def]
    layer = get_channel_layer()
    team = live.group_for_team(ticket.group_id)
    channel = await layer.new_channel()
    await layer.group_add(team, channel)

    def solve() -> list[str]:
        with statements_sent() as seen, TestCase.captureOnCommitCallbacks(execute=True):
            response = client.patch(f"/api/v1/tickets/{ticket.pk}/", {"status": "solved"}, format="json")
        assert response.status_code == 200, response.content
        return seen

    try:
        seen = await sync_to_async(solve)()
        assert await asyncio.wait_for(layer.receive(channel), 5) == live.tickets_payload({ticket.pk: "updated"})
    finally:
        await layer.group_discard(team, channel)
    return seen


def test_a_reply_reads_the_channel_account_with_the_locked_ticket(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    read = _tables_read_alone(
        lambda: client_for(agent).post(f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "Sorry"}, format="json")
    )
    assert "plugins_channelaccount" not in read, read


def test_a_tickets_messages_and_events_read_in_one_statement_each_as_the_orm_reads_them(  # type: ignore[no-untyped-def]
    agent, sending_account, deliver, django_assert_num_queries,
):
    from omnidesk.api.serializers import MessageSerializer, TicketEventSerializer
    from omnidesk.tickets.models import Message
    from omnidesk.tickets.selectors import ticket_events, ticket_messages

    ticket = deliver()
    client = client_for(agent)
    assert client.post(f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "Sorry"}, format="json").status_code == 202
    assert client.post(f"/api/v1/tickets/{ticket.pk}/notes/", {"text": "Asked the depot"}, format="json").status_code == 201
    with django_assert_num_queries(1):
        events = ticket_events(ticket=ticket)
    with django_assert_num_queries(2):  # the messages with what they show, then their attachments
        messages = ticket_messages(ticket=ticket)
        shown = MessageSerializer(many=True).to_representation(messages)
    orm = (Message.objects.filter(ticket=ticket).select_related("author_identity", "author_user", "account", "outbound")
           .prefetch_related("attachments").order_by("sent_at", "pk"))
    assert shown == MessageSerializer(many=True).to_representation(orm)
    assert [m["delivery"] is not None for m in shown] == [False, True, False]  # the reply's outbox row, read with it
    orm_events = ticket.events.select_related("actor_user").order_by("at", "pk")
    assert TicketEventSerializer(many=True).to_representation(events) == TicketEventSerializer(many=True).to_representation(orm_events)
    assert len(events) >= 3


def test_a_reply_answers_the_last_message_read_with_its_account_and_identity_by_a_statement_built_once(  # type: ignore[no-untyped-def]
    agent, sending_account, deliver,
):
    from django.db import connection

    from omnidesk.tickets.models import OutboundMessage

    ticket = deliver()
    later = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0).isoformat()
    assert deliver(id="m-2", text="Any news?", sent_at=later).pk == ticket.pk
    with statements_sent() as seen:
        response = client_for(agent).post(f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "Sorry"}, format="json")
    assert response.status_code == 202, response.content
    assert OutboundMessage.objects.get(message_id=response.json()["id"]).in_reply_to == "m-2"
    # the message answered (the SLA's read of the ticket's messages for its clocks comes later)
    read = [sql for sql in seen if "tickets_message" in sql.split(" WHERE ")[0] and sql.endswith("LIMIT 1")]
    assert len(read) == 1, "\n".join(read)  # the account and the identity joined
    if connection.vendor == "postgresql":
        assert ' FROM "tickets_message" m LEFT JOIN ' in read[0], read  # rows.select_sql's, not compiled per call
