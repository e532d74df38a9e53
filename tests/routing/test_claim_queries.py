"""What one "next ticket" costs in queries, and that its live update still goes out (off the request path)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
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
    # the rest (an account's config and secrets, a ticket's samples) stays in the database until used
    with CaptureQueriesContext(connection) as queries:
        rest = (ticket.origin_account.config, ticket.next_response_samples)
    assert rest == (api_account.config, Ticket.objects.get(pk=first.pk).next_response_samples)
    assert len(queries) == (2 if connection.vendor == "postgresql" else 0), [q["sql"][:80] for q in queries]
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
    user = _fresh(agent)

    def claim() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            queue_claim_next(user=user)

    async def listen_and_claim() -> list[dict]:
        # one loop for the whole exchange: the Pub/Sub layer keeps a loop's channels to that loop
        import asyncio

        layer = get_channel_layer()
        groups = [live.MANAGERS, live.group_for_team(ticket.group_id)]
        channels = [await layer.new_channel() for _ in groups]
        for group, channel in zip(groups, channels):
            await layer.group_add(group, channel)
        try:
            await sync_to_async(claim)()
            return [await asyncio.wait_for(layer.receive(channel), timeout=5) for channel in channels]
        finally:
            for group, channel in zip(groups, channels):
                await layer.group_discard(group, channel)

    assert async_to_sync(listen_and_claim)() == [live.tickets_payload({ticket.pk: "claimed"})] * 2


def test_a_claim_that_finds_nothing_is_one_statement_too(api_account, agent):
    user = _fresh(agent)
    with CaptureQueriesContext(connection) as queries:
        assert queue_claim_next(user=user) is None
    # the claim itself says whether the agent is at capacity: no count after it
    assert len(queries) == (1 if connection.vendor == "postgresql" else 4), [q["sql"][:80] for q in queries]
    token = Token.objects.create(user=agent).key
    assert APIClient(HTTP_AUTHORIZATION=f"Token {token}").post("/api/v1/queue/next/").status_code == 204


def test_an_agent_at_capacity_is_refused_in_one_statement(api_account, agent):
    first, second = _tickets(api_account, 2)
    Agent.objects.filter(user=agent).update(capacity=1)
    user = _fresh(agent)
    queue_claim_next(user=user)
    with CaptureQueriesContext(connection) as queries, pytest.raises(AtCapacity, match="1 open ticket"):
        queue_claim_next(user=user)
    # SQLite: the count inside a savepoint, rolled back and released
    assert len(queries) == (1 if connection.vendor == "postgresql" else 4), [q["sql"][:80] for q in queries]
    assert Ticket.objects.get(pk=second.pk).assignee_id is None
    Ticket.objects.filter(pk=first.pk).update(status="solved")  # no longer held: room for one more
    assert queue_claim_next(user=user).pk == second.pk
    body = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=agent).key}").post("/api/v1/queue/next/")
    assert body.status_code == 409 and body.json()["error"] == "at_capacity"


def _claim_runs_prepared() -> tuple[int, int]:
    """(prepared claim statements, their runs) on this connection."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements"
            " WHERE statement LIKE 'WITH who AS%%'"
        )
        return tuple(cursor.fetchone())


def test_the_claim_is_planned_once_per_connection(postgres, api_account, agent):
    _tickets(api_account, 8)
    user = _fresh(agent)
    queue_claim_next(user=user)
    statements, runs = _claim_runs_prepared()
    for _ in range(6):
        queue_claim_next(user=user)
    assert _claim_runs_prepared() == (statements, runs + 6)  # the same prepared statement, run six more times


def test_only_the_claim_and_the_token_read_prepare_on_the_connection(postgres, api_account, agent):
    """Other server-binding cursors (the parity report's) keep Django's no-preparing default."""
    import psycopg

    _tickets(api_account, 1)
    queue_claim_next(user=_fresh(agent))
    with psycopg.Cursor(connection.connection) as cursor:
        for _ in range(8):
            cursor.execute("SELECT %s::int + 41 AS answer", [1])
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%answer%%'")
        assert cursor.fetchone() == (0,)
    assert _claim_runs_prepared()[0] >= 1


def test_settings_that_turn_preparing_off_are_kept(postgres, api_account, agent):
    """Behind a transaction-mode pooler a deployment sets OPTIONS["prepare_threshold"] = None."""
    _tickets(api_account, 3)
    user = _fresh(agent)
    queue_claim_next(user=user)
    before = _claim_runs_prepared()
    connection.settings_dict["OPTIONS"]["prepare_threshold"] = None
    connection.connection.prepare_threshold = None  # as a connection opened with that setting
    try:
        queue_claim_next(user=user)
        queue_claim_next(user=user)
        assert _claim_runs_prepared() == before
    finally:
        del connection.settings_dict["OPTIONS"]["prepare_threshold"]


def test_a_claimed_ticket_is_built_as_from_db_builds_it(api_account, agent):
    """The claim puts the row's values in the instances' __dict__; what from_db would give, field by field."""
    (ticket,) = _tickets(api_account, 1)
    claimed = queue_claim_next(user=_fresh(agent))
    loaded = Ticket.objects.select_related("customer", "origin_account", "group", "sla_policy").get(pk=ticket.pk)
    for instance, expected in [(claimed, loaded), *((getattr(claimed, n), getattr(loaded, n)) for n in (
            "customer", "origin_account", "group", "sla_policy"))]:
        for field in type(expected)._meta.concrete_fields:
            assert getattr(instance, field.attname) == getattr(expected, field.attname), field.name
        assert (instance._state.adding, instance._state.db) == (False, "default")
    assert claimed.assignee == agent and claimed.sla_policy is not None


def test_a_model_with_init_listeners_still_gets_its_signals(api_account, agent):
    """A receiver of pre_init/post_init (none in the project today) sees claimed tickets as any loaded ones."""
    from django.db.models.signals import post_init

    (ticket,) = _tickets(api_account, 1)
    seen: list[int] = []

    def receiver(sender, instance, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(instance.pk)

    post_init.connect(receiver, sender=Ticket)
    try:
        assert queue_claim_next(user=_fresh(agent)).pk == ticket.pk
    finally:
        post_init.disconnect(receiver, sender=Ticket)
    assert seen == [ticket.pk]


def test_a_claim_writes_no_index_no_query_reads(postgres):
    """A claim's UPDATE is never HOT (assignee_id is indexed), so it writes every index of the table: the
    queue-order index that no query could use and the policy FKs' (looked up only when a policy is deleted) are
    gone, and so is the audit event's ticket index that (ticket, at) covers."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = 'tickets_ticket'::regclass"
        )
        leading = {column for (column,) in cursor.fetchall()}
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'ticket_queue_order'")
        assert cursor.fetchone() == (0,)
        cursor.execute(
            "SELECT array_agg(pg_get_indexdef(indexrelid)) FROM pg_index WHERE indrelid = 'tickets_ticketevent'::regclass"
            " AND indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = indrelid AND attname = 'ticket_id')"
        )
        (event_indexes,) = cursor.fetchone()
    assert not leading & {"sla_policy_id", "sla_policy_override_id"}
    assert {"assignee_id", "status", "sla_due_at"} <= leading  # (assignee, status), (status, group), the claim's own
    assert len(event_indexes) == 1 and "(ticket_id, at)" in event_indexes[0]  # the audit event's: one, not two
