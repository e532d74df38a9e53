"""The Django admin: every page loads, secrets never render, the event log can be retried."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from omnidesk.customers.models import Customer, Identity
from omnidesk.inbox.models import Cursor, InboundEvent
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.services import account_plugin, channel_account_save
from omnidesk.routing.models import Agent, Group
from omnidesk.tickets.models import OutboundMessage, Ticket, TicketEvent
from omnidesk.tickets.replies import reply_create
from tests.conftest import api_body

pytestmark = pytest.mark.django_db

SECRET = "admin-secret-9c1e"


@pytest.fixture
def world(api_account, post_hook, admin_user):  # type: ignore[no-untyped-def]
    """One of everything, made the way production makes it."""
    account = channel_account_save(
        kind="api", slug="acme-api", name="Acme widget", config={"callback_url": "http://127.0.0.1:9/"},
        secrets={"secret": SECRET}, default_group_id=api_account.default_group_id, account=api_account,
    )
    post_hook("acme-api", api_body(), secret=SECRET)
    post_hook("acme-api", b"<script>alert(1)</script> not json", secret=SECRET)
    inbound_events_apply()
    ticket = Ticket.objects.get()
    reply_create(ticket=ticket, user=admin_user, text="We are on it.")
    agent_user = get_user_model().objects.create_user("sam", password="pw")
    agent = Agent.objects.create(user=agent_user)
    agent.groups.set(Group.objects.all())
    Cursor.objects.create(account=account, value="cursor-1")
    return account


MODELS = [ChannelAccount, Ticket, TicketEvent, OutboundMessage, Customer, Identity, InboundEvent, Cursor, Group, Agent]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_and_change_pages_load(admin_client, world, model):
    meta = model._meta
    listing = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert listing.status_code == 200
    obj = model.objects.order_by("pk").first()
    page = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]))
    assert page.status_code == 200


def test_changelist_filters_load(admin_client, world):
    for url in ("/admin/tickets/ticket/?status__exact=new&origin_account__kind=api",
                "/admin/inbox/inboundevent/?status__exact=failed", "/admin/plugins/channelaccount/?kind=api"):
        assert admin_client.get(url).status_code == 200, url


def test_account_pages_never_show_the_secret(admin_client, world):
    pages = [admin_client.get(f"/admin/plugins/channelaccount/{world.pk}/change/"),
             admin_client.get("/admin/plugins/channelaccount/"),
             admin_client.get(f"/admin/plugins/channelaccount/{world.pk}/history/")]
    for page in pages:
        html = page.content.decode()
        assert SECRET not in html
        assert world.secrets_encrypted not in html
    change = pages[0].content.decode()
    assert "/hooks/acme-api/" in change and "write-only (stored)" in change


def _form(**overrides: str) -> dict[str, str]:
    data = {"kind": "api", "slug": "crm", "name": "CRM", "enabled": "on", "config": '{"callback_url": ""}',
            "default_group": "", "default_region": "", "secret__secret": "fresh-secret"}
    data.update(overrides)
    return data


def test_add_account_saves_through_the_service(admin_client, db):
    response = admin_client.post("/admin/plugins/channelaccount/add/", _form())
    assert response.status_code == 302, response.content.decode()[:3000]
    account = ChannelAccount.objects.get(slug="crm")
    assert account_plugin(account).config.secret.reveal() == "fresh-secret"


@pytest.mark.parametrize(
    "overrides, words",
    [({"config": '{"colour": "blue"}'}, "unknown setting(s): colour"),
     ({"secret__secret": ""}, "secret: required secret is missing"),
     ({"config": "[1, 2]"}, "must be a JSON object")],
)
def test_bad_config_is_a_form_error(admin_client, db, overrides, words):
    response = admin_client.post("/admin/plugins/channelaccount/add/", _form(**overrides))
    assert response.status_code == 200
    assert words in response.content.decode()
    assert not ChannelAccount.objects.filter(slug="crm").exists()


def test_change_with_blank_secret_keeps_it(admin_client, world):
    data = _form(slug="acme-api", name="Renamed", config=json.dumps(world.config), secret__secret="")
    del data["kind"]  # disabled on change
    response = admin_client.post(f"/admin/plugins/channelaccount/{world.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    world.refresh_from_db()
    assert world.name == "Renamed" and account_plugin(world).config.secret.reveal() == SECRET


def test_event_body_preview_is_escaped(admin_client, world):
    failed = InboundEvent.objects.get(status="failed")
    html = admin_client.get(f"/admin/inbox/inboundevent/{failed.pk}/change/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "malformed_payload" in html


def test_retry_action_requeues_failed_events(admin_client, world):
    failed = InboundEvent.objects.get(status="failed")
    processed = InboundEvent.objects.get(status="processed")
    response = admin_client.post(
        "/admin/inbox/inboundevent/",
        {"action": "retry_events", "_selected_action": [failed.pk, processed.pk]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "1 event(s) queued for retry." in text and "1 skipped" in text
    failed.refresh_from_db()
    processed.refresh_from_db()
    assert (failed.status, failed.error) == ("pending", "")
    assert processed.status == "processed"


def test_ticket_change_in_admin_is_audited(admin_client, admin_user, world):
    ticket = Ticket.objects.get()
    response = admin_client.post(
        f"/admin/tickets/ticket/{ticket.pk}/change/",
        {"status": "solved", "priority": "high", "group": ticket.group_id, "assignee": "",
         "messages-TOTAL_FORMS": "0", "messages-INITIAL_FORMS": "0",
         "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    ticket.refresh_from_db()
    assert ticket.status == "solved" and ticket.solved_at is not None and ticket.priority == "high"
    assert set(ticket.events.filter(actor_user=admin_user, action__endswith="_changed").values_list("field", flat=True)) == {
        "status", "priority"
    }


def test_audit_trail_is_read_only(admin_client, world):
    event = TicketEvent.objects.first()
    assert admin_client.get("/admin/tickets/ticketevent/add/").status_code == 403
    assert admin_client.post(f"/admin/tickets/ticketevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert TicketEvent.objects.filter(pk=event.pk).exists()


def test_rule_admin_names_every_problem_and_saves_a_good_rule(admin_client):  # type: ignore[no-untyped-def]
    from omnidesk.routing.models import Rule

    form = {"name": "Angry tweets", "description": "", "position": "5", "active": "on",
            "events": '["customer_message"]', "conditions": '[{"field": "sentiment", "op": "<=", "value": -0.5}]',
            "any_conditions": "[]", "actions": '[{"type": "set_priority", "value": "sky-high"}]'}
    bad = admin_client.post("/admin/routing/rule/add/", form)
    assert bad.status_code == 200 and "sky-high" in bad.content.decode()
    form["actions"] = '[{"type": "set_priority", "value": "high"}]'
    good = admin_client.post("/admin/routing/rule/add/", form)
    assert good.status_code == 302, good.content.decode()[:2000]
    assert Rule.objects.get(name="Angry tweets").actions == [{"type": "set_priority", "value": "high"}]
    assert admin_client.get("/admin/routing/rule/").status_code == 200
