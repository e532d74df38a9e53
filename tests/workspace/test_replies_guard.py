"""reply_create's PII guard and collision check, through the service and the API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from omnidesk.customers.services import MergeInvalid, customer_merge
from omnidesk.tickets.models import Message, TicketEvent
from omnidesk.tickets.replies import PublicReplyHasPII, ReplyConflict, reply_create
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db


def _last_id(ticket) -> int:  # type: ignore[no-untyped-def]
    return Message.objects.filter(ticket=ticket).order_by("-pk").values_list("pk", flat=True).first()


def test_public_reply_with_pii_is_held(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    with pytest.raises(PublicReplyHasPII, match="phone number.*private reply"):
        reply_create(ticket=ticket, user=agent, text="Call +44 20 7946 0958", visibility="public")
    assert reply_create(ticket=ticket, user=agent, text="Call +44 20 7946 0958", visibility="private")
    assert reply_create(ticket=ticket, user=agent, text="Call +44 20 7946 0958", visibility="public", allow_public_pii=True)


def test_collision_needs_confirmation(agent, django_user_model, support, sending_account, deliver):  # type: ignore[no-untyped-def]
    from omnidesk.routing.models import Agent

    other = django_user_model.objects.create_user("kim", password="x")
    Agent.objects.create(user=other).groups.set([support])
    ticket = deliver()
    seen = _last_id(ticket)
    reply_create(ticket=ticket, user=other, text="On it.", visibility="private")
    with pytest.raises(ReplyConflict, match="kim sent a private reply"):
        reply_create(ticket=ticket, user=agent, text="Hello", visibility="private", seen_up_to=seen)
    reply_create(ticket=ticket, user=agent, text="Hello", visibility="private", seen_up_to=seen, confirm_conflict=True)
    # my own replies never conflict, nor does what I had seen
    reply_create(ticket=ticket, user=agent, text="Again", visibility="private", seen_up_to=_last_id(ticket))


def test_api_answers_409_with_codes(agent, django_user_model, support, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    api: APIClient = client_for(agent)
    url = f"/api/v1/tickets/{ticket.pk}/replies/"
    held = api.post(url, {"text": "card 4111 1111 1111 1111", "visibility": "public"}, format="json")
    assert held.status_code == 409 and held.json()["error"] == "public_pii" and "…1111" in held.json()["detail"]
    ok = api.post(url, {"text": "card 4111 1111 1111 1111", "visibility": "public", "allow_public_pii": True}, format="json")
    assert ok.status_code == 202
    from omnidesk.routing.models import Agent

    other = django_user_model.objects.create_user("kim", password="x")
    Agent.objects.create(user=other).groups.set([support])
    seen = _last_id(ticket)
    client_for(other).post(url, {"text": "Sorted.", "visibility": "private"}, format="json")
    conflict = api.post(url, {"text": "Hi", "visibility": "private", "seen_up_to": seen}, format="json")
    assert conflict.status_code == 409 and conflict.json()["error"] == "reply_conflict"
    assert "kim" in conflict.json()["detail"]
    assert api.post(url, {"text": "Hi", "visibility": "private", "seen_up_to": seen, "confirm_conflict": True},
                    format="json").status_code == 202


def test_customer_merge(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    a = deliver(id="m-1", thread="t-1")
    b = deliver(id="m-2", thread="t-2", author={"id": "u-2", "name": "Ada on X"})
    survivor, merged = a.customer, b.customer
    moved = set(merged.identities.values_list("pk", flat=True))
    customer_merge(survivor=survivor, merged=merged, user=agent)
    merged.refresh_from_db()
    b.refresh_from_db()
    assert merged.merged_into_id == survivor.pk and b.customer_id == survivor.pk
    assert moved <= set(survivor.identities.values_list("pk", flat=True))
    assert TicketEvent.objects.filter(action="customer_merged", ticket__in=[a, b]).count() == 2
    with pytest.raises(MergeInvalid):
        customer_merge(survivor=survivor, merged=merged, user=agent)
    # the merged customer's next message lands on the survivor
    c = deliver(id="m-3", thread="t-3", author={"id": "u-2", "name": "Ada on X"})
    assert c.customer_id == survivor.pk
