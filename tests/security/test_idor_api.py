"""An agent of Support attacks Billing's ticket and customer through every object route of the API.

Every attempt answers 404 exactly as for an object that does not exist (existence never leaks),
and changes nothing. A new route must be classified in routes.py, and an object route must have
an attack in attacks.py, or these tests fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omnidesk.customers.models import Customer
from omnidesk.tickets.models import OutboundMessage, Ticket

from tests.api.conftest import client_for

from .attacks import api_attacks, page_attacks, send
from .routes import COLLECTIONS, DESK_CONFIGURATION, INCIDENTS, NO_GROUP_DATA, OBJECT_ROUTES, classified, routes

pytestmark = pytest.mark.django_db


def test_every_route_is_classified() -> None:
    known = classified()
    missing = [r for r in routes() if not r.pattern.startswith("admin/") and r.name not in known]
    assert not missing, (
        "routes not classified in tests/security/routes.py (say how each is scoped, and add its attack): "
        + ", ".join(f"{r.name} ({r.pattern})" for r in missing)
    )
    with_ids = {r.name for r in routes() if r.kwargs and not r.pattern.startswith("admin/")}
    unscoped = with_ids - OBJECT_ROUTES - set(DESK_CONFIGURATION) - INCIDENTS - {"webhook", "omnidesk.api.urls.not_found"}
    assert not unscoped, f"routes taking an object id must be OBJECT_ROUTES, DESK_CONFIGURATION or INCIDENTS: {unscoped}"
    assert not (set(COLLECTIONS) & set(NO_GROUP_DATA))


def test_every_object_route_has_an_attack() -> None:
    attacked = {a.route for a in api_attacks(ticket=1, customer=1, account="x", attacker=1, own_group=1)}
    attacked |= {a.route for a in page_attacks(ticket=1, attachment=1, identity=1, own_customer=1)}
    assert OBJECT_ROUTES - attacked == set(), f"object routes without an attack in attacks.py: {OBJECT_ROUTES - attacked}"


def _normalized(response, ident: str) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    body = response.json() if response["Content-Type"].startswith("application/json") else response.content
    text = re.sub(rf"\b{re.escape(ident)}\b", "ID", str(body))
    return response.status_code, text


def test_another_groups_objects_are_404_like_missing_ones(agent, own, victim, billing_account) -> None:  # type: ignore[no-untyped-def]
    client = client_for(agent)
    before = victim.snapshot()
    missing_ticket = str((Ticket.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000)
    missing_customer = str((Customer.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000)
    common = {"attacker": agent.pk, "own_group": own.group_id}
    real = api_attacks(ticket=victim.ticket.pk, customer=victim.customer.pk, account=billing_account.slug, **common)
    fake = api_attacks(ticket=int(missing_ticket), customer=int(missing_customer), account="no-such-account", **common)
    problems = []
    for attack, control in zip(real, fake):
        response = send(client, attack)
        if response.status_code != 404:
            problems.append(f"{attack.method.upper()} {attack.path} {attack.body!r}: {response.status_code} {response.content[:200]!r}")
            continue
        ident = {"customer-detail": str(victim.customer.pk), "channel-account-calls-import": billing_account.slug}.get(
            attack.route, str(victim.ticket.pk))
        ctrl_ident = {"customer-detail": missing_customer, "channel-account-calls-import": "no-such-account"}.get(
            attack.route, missing_ticket)
        if _normalized(response, ident) != _normalized(send(client, control), ctrl_ident):
            problems.append(f"{attack.method.upper()} {attack.path}: answers differently from a missing object")
    assert not problems, "\n".join(problems)
    assert victim.snapshot() == before
    assert not OutboundMessage.objects.filter(message__ticket=victim.ticket).exists()


def test_lists_and_searches_leave_out_other_groups(agent, own, victim) -> None:  # type: ignore[no-untyped-def]
    client = client_for(agent)
    queries = {
        "/api/v1/tickets/": [own.pk],
        f"/api/v1/tickets/?group={victim.ticket.group_id}": [],
        "/api/v1/tickets/?assignee=none&status=new": [own.pk],
        "/api/v1/customers/": [own.customer_id],
        "/api/v1/customers/?search=Vic": [],
        "/api/v1/customers/?search=vic@example.com": [],
        "/api/v1/queue/": [own.pk],
    }
    for url, expected in queries.items():
        response = client.get(url)
        assert response.status_code == 200, (url, response.content)
        body = response.json()
        rows = body["results"] if isinstance(body, dict) else body
        assert [r["id"] for r in rows] == expected, url
        assert "VICTIM-TEXT" not in response.content.decode() and "Vic Tim" not in response.content.decode(), url


def test_claiming_never_takes_another_groups_ticket(agent, victim) -> None:  # type: ignore[no-untyped-def]
    """Only Billing's ticket is waiting: 'next ticket' finds nothing for an agent of Support."""
    response = client_for(agent).post("/api/v1/queue/next/")
    assert response.status_code == 204, response.content
    assert Ticket.objects.get(pk=victim.ticket.pk).assignee_id is None


def test_dry_run_of_another_groups_ticket_is_404(agent, victim) -> None:  # type: ignore[no-untyped-def]
    client = client_for(agent)
    response = client.post("/api/v1/routing/rules/dry-run/", {"ticket": victim.ticket.pk}, format="json")
    missing = client.post("/api/v1/routing/rules/dry-run/", {"ticket": victim.ticket.pk + 1000}, format="json")
    assert response.status_code == missing.status_code == 404
    assert response.json()["error"] == missing.json()["error"] == "not_found"
    assert "facts" not in response.json()


def test_desk_configuration_is_read_only_for_agents(agent, billing_account) -> None:  # type: ignore[no-untyped-def]
    from omnidesk.routing.models import Rule
    from omnidesk.sla.models import Calendar, Policy

    client = client_for(agent)
    targets = {
        "channel-account-detail": f"/api/v1/channel-accounts/{billing_account.slug}/",
        "sla-policy-detail": f"/api/v1/sla/policies/{Policy.objects.values_list('pk', flat=True).first()}/",
        "sla-calendar-detail": f"/api/v1/sla/calendars/{Calendar.objects.values_list('pk', flat=True).first()}/",
        "routing-rule-detail": f"/api/v1/routing/rules/{Rule.objects.values_list('pk', flat=True).first()}/",
    }
    assert set(targets) == set(DESK_CONFIGURATION)
    for name, url in targets.items():
        assert "None" not in url, f"{name}: the migrations seed one row to try"
        assert client.get(url).status_code == 200, name
        assert client.patch(url, {"name": "mine now"}, format="json").status_code == 403, name
        assert client.delete(url).status_code == 403, name


def test_agents_import_calls_only_into_their_groups_lines(agent, victim, support, billing) -> None:  # type: ignore[no-untyped-def]
    """Importing into Billing's phone line would write onto Billing's tickets: 404, like a missing line."""
    from omnidesk.plugins.services import channel_account_save

    for slug, group in (("support-phone", support), ("billing-phone", billing)):
        channel_account_save(kind="phone", slug=slug, name=slug, config={"default_region": "GB"}, default_group_id=group.pk)
    master = (Path(__file__).parents[1] / "plugins/phone/fixtures/cdr__asterisk_master_csv.csv").read_bytes()
    client = client_for(agent)
    refused = client.generic("POST", "/api/v1/channel-accounts/billing-phone/calls/import/", master, content_type="text/csv")
    missing = client.generic("POST", "/api/v1/channel-accounts/no-line/calls/import/", master, content_type="text/csv")
    assert refused.status_code == missing.status_code == 404
    assert not Ticket.objects.filter(group=billing).exclude(pk=victim.ticket.pk).exists()
    mine = client.generic("POST", "/api/v1/channel-accounts/support-phone/calls/import/", master, content_type="text/csv")
    assert mine.status_code == 200, mine.content
    assert mine.json()["tickets"] and set(mine.json()["tickets"]) <= set(
        Ticket.objects.filter(group=support).values_list("pk", flat=True))


def test_incidents_show_only_ones_own_tickets(agent, own, victim) -> None:  # type: ignore[no-untyped-def]
    """An incident spans groups; an agent sees its own group's share of it, and cannot act on it."""
    from django.test import Client
    from django.utils import timezone

    from omnidesk.incidents.models import Incident, IncidentTicket

    incident = Incident.objects.create(title="Card payments failing", source=Incident.Source.MANUAL,
                                       opened_at=timezone.now(), signature=["card"])
    for ticket in (own, victim.ticket):
        IncidentTicket.objects.create(incident=incident, ticket=ticket, channel="api")
    before = victim.snapshot()
    client = client_for(agent)
    base = f"/api/v1/incidents/{incident.pk}/"
    assert sum(c["tickets"] for c in client.get(base).json()["counts"]) == 1
    listed = next(i for i in client.get("/api/v1/incidents/").json()["results"] if i["id"] == incident.pk)
    assert sum(c["tickets"] for c in listed["counts"]) == 1
    assert [t["id"] for t in client.get(base + "tickets/").json()["results"]] == [own.pk]
    report = client.get(base + "report/")
    assert report.status_code == 200 and report.json()["pooled"]["tickets"] == 1
    for url in (base + "bulk-replies/", "/api/v1/incidents/banner/"):
        answer = client.get(url)
        assert answer.status_code == 200 and b"VICTIM" not in answer.content, url
    page = Client()
    page.force_login(agent)
    shown = page.get(f"/reports/incidents/{incident.pk}/")
    assert shown.status_code == 200 and b"VICTIM" not in shown.content
    for action, body in (("confirm", {}), ("dismiss", {}), ("resolve", {}), ("bulk-reply", {"text": "Fixed now."})):
        assert client.post(base + action + "/", body, format="json").status_code == 403, action
    assert victim.snapshot() == before
    assert not OutboundMessage.objects.exists()


def test_agents_cannot_hand_their_ticket_to_someone_who_cannot_see_it(agent, own, billing, django_user_model) -> None:  # type: ignore[no-untyped-def]
    from omnidesk.routing.models import Agent

    bea = django_user_model.objects.create_user(username="bea")
    Agent.objects.create(user=bea, role="agent").groups.add(billing)
    client = client_for(agent)
    url = f"/api/v1/tickets/{own.pk}/"
    refused = client.patch(url, {"assignee": bea.pk}, format="json")
    assert refused.status_code == 400 and "assignee" in refused.json()["fields"]
    assert Ticket.objects.get(pk=own.pk).assignee_id is None
    moved = client.patch(url, {"assignee": bea.pk, "group": billing.pk}, format="json")  # a transfer: both move
    assert moved.status_code == 200 and (moved.json()["assignee"]["id"], moved.json()["group"]["id"]) == (bea.pk, billing.pk)
    assert client.get(url).status_code == 404  # and it left the agent's sight
