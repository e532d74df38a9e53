"""What one "next ticket" costs in queries, and that its live update still goes out (off the request path)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from omnidesk.routing.models import Agent
from omnidesk.routing.queue import AtCapacity, queue_claim_next
from omnidesk.tickets.models import Ticket, TicketEvent
from omnidesk.workspace import live

from .conftest import NOW, ingest

pytestmark = pytest.mark.django_db


def _tickets(account, n):
    return [ingest(account, f"q-{i}", author=f"a{i}", email=f"a{i}@example.com",
                   sent_at=NOW - timedelta(hours=n - i))[0] for i in range(n)]


def _fresh(user):
    return type(user).objects.select_related("agent").get(pk=user.pk)


def test_a_claim_is_one_statement_on_postgresql(api_account, agent):
    first, second = _tickets(api_account, 2)
    user = _fresh(agent)
    with CaptureQueriesContext(connection) as queries:
        ticket = queue_claim_next(user=user)
    assert ticket.pk == first.pk and ticket.assignee_id == agent.pk
    # pick + lock + capacity + assign + audit event in one statement; the portable path (SQLite) needs
    # a savepoint pair, the count, the pick, the update and the event
    assert len(queries) == (1 if connection.vendor == "postgresql" else 6), [q["sql"][:80] for q in queries]
    customer = first.customer.display_name
    with CaptureQueriesContext(connection) as queries:  # what the API shows comes with it
        shown = (ticket.customer.display_name, ticket.origin_account.slug, ticket.group.name, ticket.sla_policy.name)
    assert shown == (customer, api_account.slug, "Support", "Standard") and len(queries) == 0
    event = TicketEvent.objects.get(ticket=first, action="claimed")
    assert (event.actor, event.actor_user_id, event.field, event.old, event.new) == ("agent", agent.pk, "assignee", None, agent.pk)
    assert event.note == "assignee none → sam (next ticket)"
    assert Ticket.objects.get(pk=second.pk).assignee_id is None


def test_next_ticket_over_http_with_a_token_costs_two_queries(api_account, agent):
    _tickets(api_account, 3)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=agent).key}")
    client.post("/api/v1/queue/next/")
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/v1/queue/next/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["assignee"]["id"] == agent.pk and body["channel"]["account"] == api_account.slug
    assert body["group"]["name"] == "Support" and body["sla"]["policy"] == "Standard"
    # the token with its user and agent profile, then the claim
    expected = 2 if connection.vendor == "postgresql" else 7
    assert len(queries) == expected, [q["sql"][:80] for q in queries]
    assert APIClient(HTTP_AUTHORIZATION="Token nope").post("/api/v1/queue/next/").status_code == 401


def test_the_token_read_with_its_profile_keeps_every_refusal(api_account, agent, manager, outsider):
    _tickets(api_account, 2)

    def post(user):
        key = Token.objects.get_or_create(user=user)[0].key
        return APIClient(HTTP_AUTHORIZATION=f"Token {key}").post("/api/v1/queue/next/")

    assert post(outsider).status_code == 403  # signed in, but no agent profile
    assert post(manager).json()["assignee"]["id"] == manager.pk  # a manager claims from every group
    type(agent).objects.filter(pk=agent.pk).update(is_active=False)
    refused = post(agent)
    assert refused.status_code == 401 and refused.json()["detail"] == "User inactive or deleted."
    assert Ticket.objects.filter(assignee=agent).count() == 0


def test_capacity_is_checked_inside_the_claim(api_account, agent):
    _tickets(api_account, 2)
    Agent.objects.filter(user=agent).update(capacity=1)
    user = _fresh(agent)
    assert queue_claim_next(user=user) is not None
    with pytest.raises(AtCapacity):
        queue_claim_next(user=user)
    assert Ticket.objects.filter(assignee=agent).count() == 1
    assert TicketEvent.objects.filter(action="claimed").count() == 1


def test_a_claim_is_broadcast_to_managers_and_the_team(api_account, agent, django_capture_on_commit_callbacks):
    (ticket,) = _tickets(api_account, 1)
    layer = get_channel_layer()
    managers = async_to_sync(layer.new_channel)()
    team = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(live.MANAGERS, managers)
    async_to_sync(layer.group_add)(live.group_for_team(ticket.group_id), team)
    user = _fresh(agent)
    with django_capture_on_commit_callbacks(execute=True):
        queue_claim_next(user=user)

    async def receive(channel):
        import asyncio

        return await asyncio.wait_for(layer.receive(channel), timeout=5)

    try:
        for channel in (managers, team):
            assert async_to_sync(receive)(channel) == live.tickets_payload({ticket.pk: "claimed"})
    finally:
        async_to_sync(layer.group_discard)(live.MANAGERS, managers)
        async_to_sync(layer.group_discard)(live.group_for_team(ticket.group_id), team)
