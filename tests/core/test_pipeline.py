"""Webhook → stored event → applied message, through the real view, service and plugin."""

import json

import pytest

from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.tickets.models import Message, Ticket
from tests.conftest import api_body

pytestmark = pytest.mark.django_db


def test_signed_message_becomes_a_ticket(api_account, post_hook):
    body = api_body()
    resp = post_hook("acme-api", body)
    assert resp.status_code == 200, resp.content
    event = InboundEvent.objects.get(pk=resp.json()["event"])
    assert event.status == "pending"
    report = inbound_events_apply()
    assert report.applied == 1
    ticket = Ticket.objects.get()
    assert ticket.subject == "My parcel never arrived."
    assert ticket.group.name == "Support"
    assert ticket.customer.identities.filter(kind="email", value="ada@example.com").exists()
    msg = Message.objects.get()
    assert (msg.direction, msg.visibility, msg.external_id) == ("in", "private", "m-1")
    assert msg.sent_at.isoformat() == json.loads(body)["sent_at"]
    actions = list(ticket.events.values_list("action", flat=True))
    assert actions[:2] == ["created", "message_added"]
    # sent three weeks before "now": the default policy's first response is long overdue
    assert {"sla_warning", "sla_breach"} <= set(actions)


def test_redelivery_is_acknowledged_and_stored_once(api_account, post_hook):
    first = post_hook("acme-api", api_body()).json()
    second = post_hook("acme-api", api_body()).json()
    assert second == {**first, "duplicate": True}
    inbound_events_apply()
    assert Message.objects.count() == 1
