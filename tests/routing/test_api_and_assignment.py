"""Rules API (managers), dry-run, the queue and next ticket, presence, assignment strategies."""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnidesk.routing.assignment import assignee_pick
from omnidesk.routing.models import Agent, Group
from omnidesk.routing.queue import queue_claim_next, queue_for_user
from omnidesk.tickets.models import Ticket, TicketEvent

from .conftest import NOW, client_for, ingest

pytestmark = pytest.mark.django_db


def test_managers_change_rules_agents_read_and_problems_are_named(manager, agent):
    body = {"name": "VIP", "events": ["customer_message"],
            "conditions": [{"field": "text", "op": "regex", "value": "(vip"}],
            "actions": [{"type": "set_priority", "value": "urgent"}]}
    assert client_for(agent).post("/api/v1/routing/rules/", body, format="json").status_code == 403
    bad = client_for(manager).post("/api/v1/routing/rules/", body, format="json")
    assert bad.status_code == 400 and "invalid regular expression" in bad.json()["detail"]
    body["conditions"][0]["value"] = r"\bvip\b"
    made = client_for(manager).post("/api/v1/routing/rules/", body, format="json")
    assert made.status_code == 201, made.content
    rid = made.json()["id"]
    assert client_for(manager).patch(f"/api/v1/routing/rules/{rid}/", {"active": False}, format="json").json()["active"] is False
    assert any(r["name"] == "VIP" for r in client_for(agent).get("/api/v1/routing/rules/").json()["results"])
    assert client_for(manager).delete(f"/api/v1/routing/rules/{rid}/").status_code == 204


def test_dry_run_explains_and_changes_nothing(api_account, agent):
    ticket, _ = ingest(api_account, "m-1", public=True, followers=50, text="meh")
    Ticket.objects.filter(pk=ticket.pk).update(priority="low")
    before = (Ticket.objects.filter(pk=ticket.pk).values().get(), TicketEvent.objects.count())
    response = client_for(agent).post("/api/v1/routing/rules/dry-run/", {"ticket": ticket.pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["event"] == "ticket_created" and body["facts"]["followers"] == 50
    reach = next(r for r in body["rules"] if r["name"].startswith("Reach"))
    assert reach["fired"] is False
    assert {"field": "followers", "op": ">=", "value": 10000, "actual": 50, "held": False} in reach["any_conditions"]
    Ticket.objects.filter(pk=ticket.pk).update(priority="low")
    Message = ticket.messages.model
    Message.objects.filter(ticket=ticket).update(reach_followers=50_000)
    body = client_for(agent).post("/api/v1/routing/rules/dry-run/", {"ticket": ticket.pk}, format="json").json()
    reach = next(r for r in body["rules"] if r["name"].startswith("Reach"))
    assert reach["fired"] is True and reach["actions"] == [{"type": "set_priority", "value": "high"}]
    after = (Ticket.objects.filter(pk=ticket.pk).values().get(), TicketEvent.objects.count())
    assert after[0]["priority"] == "low" and after[1] == before[1]


def test_dry_run_of_another_groups_ticket_is_404(billing_account, agent):
    ticket, _ = ingest(billing_account, "b-1")
    assert client_for(agent).post("/api/v1/routing/rules/dry-run/", {"ticket": ticket.pk}, format="json").status_code == 404


def test_presence(agent, outsider, manager):
    client = client_for(agent)
    assert client.post("/api/v1/routing/presence/", {"presence": "online"}, format="json").json() == {"presence": "online"}
    assert Agent.objects.get(user=agent).presence == "online"
    assert client.get("/api/v1/routing/presence/").json() == {"presence": "online"}
    assert client.post("/api/v1/routing/presence/", {"presence": "asleep"}, format="json").status_code == 400
    assert client_for(outsider).post("/api/v1/routing/presence/", {"presence": "online"}, format="json").status_code == 403


def test_queue_order_and_claims_respect_groups(api_account, billing_account, agent, manager):
    early, _ = ingest(api_account, "m-1", author="a", email="a@example.com", sent_at=NOW - timedelta(hours=3))
    late, _ = ingest(api_account, "m-2", author="b", email="b@example.com", sent_at=NOW - timedelta(hours=1))
    urgent_late, _ = ingest(api_account, "m-3", author="c", email="c@example.com", sent_at=NOW - timedelta(hours=1))
    Ticket.objects.filter(pk__in=[late.pk, urgent_late.pk]).update(sla_due_at=NOW + timedelta(hours=1))
    Ticket.objects.filter(pk=urgent_late.pk).update(priority="urgent")
    Ticket.objects.filter(pk=early.pk).update(sla_due_at=NOW + timedelta(minutes=30))
    other, _ = ingest(billing_account, "b-1", author="d", email="d@example.com", sent_at=NOW - timedelta(hours=9))
    ids = [t["id"] for t in client_for(agent).get("/api/v1/queue/").json()["results"]]
    assert ids == [early.pk, urgent_late.pk, late.pk]  # deadline first, then priority; never Billing's
    assert other.pk in [t["id"] for t in client_for(manager).get("/api/v1/queue/").json()["results"]]
    claimed = client_for(agent).post("/api/v1/queue/next/")
    assert claimed.status_code == 200 and claimed.json()["id"] == early.pk
    assert claimed.json()["assignee"]["id"] == agent.pk
    assert TicketEvent.objects.filter(ticket_id=early.pk, action="claimed", field="assignee").count() == 1
    client_for(agent).post("/api/v1/queue/next/")
    client_for(agent).post("/api/v1/queue/next/")
    assert client_for(agent).post("/api/v1/queue/next/").status_code == 204  # Billing's ticket is not theirs
    assert Ticket.objects.get(pk=other.pk).assignee_id is None


def test_claims_respect_capacity_and_skills(api_account, agent):
    Agent.objects.filter(user=agent).update(capacity=1)
    needs, _ = ingest(api_account, "m-1", author="a", email="a@example.com", sent_at=NOW - timedelta(hours=3))
    Ticket.objects.filter(pk=needs.pk).update(tags=["skill:spanish"])
    plain, _ = ingest(api_account, "m-2", author="b", email="b@example.com", sent_at=NOW - timedelta(hours=1))
    agent.refresh_from_db()
    assert [t.pk for t in queue_for_user(user=agent)] == [plain.pk]
    assert queue_claim_next(user=agent).pk == plain.pk
    response = client_for(agent).post("/api/v1/queue/next/")
    assert response.status_code == 409 and response.json()["error"] == "at_capacity"
    Agent.objects.filter(user=agent).update(capacity=5, skills=["spanish"])
    agent.refresh_from_db()
    assert queue_claim_next(user=agent).pk == needs.pk


def _agents(django_user_model, group, n, **fields):
    users = []
    for i in range(n):
        user = django_user_model.objects.create_user(f"{group.name.lower()}-{i}")
        a = Agent.objects.create(user=user, presence="online", **fields)
        a.groups.set([group])
        users.append(user)
    return users


def test_round_robin_skips_offline_and_full_agents(api_account, support, django_user_model, only_rules):
    Group.objects.filter(pk=support.pk).update(strategy="round_robin")
    a, b, c = _agents(django_user_model, support, 3)
    Agent.objects.filter(user=b).update(presence="offline")
    only_rules(name="assign", events=["ticket_created"], actions=[{"type": "assign"}])
    got = [ingest(api_account, f"m-{i}", author=f"x{i}", email=f"x{i}@example.com")[0].assignee_id for i in range(4)]
    assert got == [a.pk, c.pk, a.pk, c.pk]
    event = TicketEvent.objects.filter(action="assignee_changed", actor="rule").first()
    assert event.field == "assignee" and "round-robin" in event.note


def test_least_loaded_skills_and_pull(api_account, support, django_user_model):
    a, b = _agents(django_user_model, support, 2)
    Agent.objects.filter(user=b).update(skills=["spanish"])
    ticket, _ = ingest(api_account, "m-1")
    Ticket.objects.filter(pk=ticket.pk).update(assignee=a)
    fresh, _ = ingest(api_account, "m-2", author="z", email="z@example.com")
    group = Group.objects.get(pk=support.pk)
    group.strategy = "least_loaded"
    assert assignee_pick(group=group, ticket=fresh)[0] == b
    group.strategy = "skills"
    fresh.tags = ["skill:german"]
    user, why = assignee_pick(group=group, ticket=fresh)
    assert user is None and "german" in why
    fresh.tags = ["skill:spanish"]
    assert assignee_pick(group=group, ticket=fresh)[0] == b
    group.strategy = "pull"
    assert assignee_pick(group=group, ticket=fresh)[0] is None
