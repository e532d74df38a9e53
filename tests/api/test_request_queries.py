"""What the agents' busiest requests ask the database: reply and solve (bench/load.py's mix)."""

from __future__ import annotations

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from .conftest import client_for


def _tables_read_alone(call) -> list[str]:  # type: ignore[no-untyped-def]
    """The tables the request read with a query of their own (FROM that table), in order."""
    with CaptureQueriesContext(connection) as seen:
        response = call()
    assert response.status_code < 300, response.content
    return [q["sql"].split(' FROM "', 1)[1].split('"', 1)[0] for q in seen.captured_queries
            if q["sql"].startswith("SELECT") and ' FROM "' in q["sql"]]


def test_solving_an_assigned_ticket_reads_its_related_rows_with_it(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    client = client_for(agent)
    assert client.patch(f"/api/v1/tickets/{ticket.pk}/", {"assignee": agent.pk}, format="json").status_code == 200
    read = _tables_read_alone(lambda: client.patch(f"/api/v1/tickets/{ticket.pk}/", {"status": "solved"}, format="json"))
    assert read[0] == "routing_group"  # the agent's groups, to scope the ticket
    for table in ("customers_customer", "plugins_channelaccount", "routing_group", "auth_user"):
        assert table not in read[1:], read
    assert read.count("tickets_ticket") == 2  # the scoped read, then the row lock


def test_a_solve_writes_the_ticket_once_and_tells_its_team_without_asking(agent, sending_account, deliver, monkeypatch):  # type: ignore[no-untyped-def]
    from omnidesk.workspace import live

    told = []
    monkeypatch.setattr(live, "_deliver", told.extend)
    ticket = deliver()
    client = client_for(agent)
    with CaptureQueriesContext(connection) as seen, TestCase.captureOnCommitCallbacks(execute=True):
        response = client.patch(f"/api/v1/tickets/{ticket.pk}/", {"status": "solved"}, format="json")
    assert response.status_code == 200, response.content
    updates = [q["sql"] for q in seen.captured_queries if q["sql"].startswith('UPDATE "tickets_ticket"')]
    assert len(updates) == 1 and '"status"' in updates[0] and '"resolution_used_s"' in updates[0], updates
    statements = [q["sql"] for q in seen.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 9, statements  # groups, ticket, lock, event, UPDATE, policies; messages, files, events
    assert (live.group_for_team(ticket.group_id), live.tickets_payload({ticket.pk: "updated"})) in told
    ticket.refresh_from_db()
    assert ticket.status == "solved" and ticket.solved_at is not None and ticket.resolution_running_since is None


def test_a_reply_reads_the_channel_account_with_the_locked_ticket(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    read = _tables_read_alone(
        lambda: client_for(agent).post(f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "Sorry"}, format="json")
    )
    assert "plugins_channelaccount" not in read, read
