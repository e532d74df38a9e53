"""POST /api/v1/tickets/{id}/replies/ and /notes/: queued through the outbox, refused with a reason."""

from __future__ import annotations

import pytest

from channels_plugins.api.adapter import ApiChannel
from omnidesk.plugins.errors import (
    CapabilityError,
    PermanentSendError,
    ReplyTooLong,
    ReplyWindowClosed,
    RetryableSendError,
)
from omnidesk.tickets.models import Message, OutboundMessage

from .conftest import client_for

pytestmark = pytest.mark.django_db


def test_reply_is_202_and_queued_in_the_outbox(agent, sending_account, deliver, django_capture_on_commit_callbacks):
    ticket = deliver(public=True)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(agent).post(f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "On its way!"}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["direction"] == "out" and body["state"] == "queued" and body["visibility"] == "public"
    assert body["author_agent"]["username"] == "sam" and body["channel"] == {"kind": "api", "account": "acme-api"}
    assert body["delivery"]["status"] == "queued" and body["delivery"]["attempts"] == 0
    outbound = OutboundMessage.objects.get()
    assert outbound.message_id == body["id"] and outbound.status == "queued"
    assert outbound.to_identity.value == "u-1"
    assert len(callbacks) == 1  # the send is nudged after commit
    ticket.refresh_from_db()
    assert ticket.status == "open" and ticket.first_response_at is not None


def test_reply_visibility_and_identity_can_be_chosen(agent, sending_account, deliver):
    ticket = deliver()
    identity = ticket.customer.identities.get(kind="external")
    response = client_for(agent).post(
        f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "hi", "visibility": "public", "identity": identity.pk},
        format="json",
    )
    assert response.status_code == 202 and response.json()["visibility"] == "public"


def test_reply_longer_than_the_channel_allows_is_400(agent, sending_account, deliver):
    ticket = deliver()
    response = client_for(agent).post(f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "x" * 100_001}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "reply_too_long"
    assert "100001 characters long; API allows 100000" in response.json()["detail"]
    assert not OutboundMessage.objects.exists()


def test_reply_on_an_account_without_callback_is_400(agent, api_account, deliver):
    ticket = deliver()
    response = client_for(agent).post(f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "hello"}, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {
        "error": "send_permanent", "detail": "account acme-api has no callback_url, so it cannot send replies",
    }
    assert not Message.objects.filter(direction="out").exists()


def test_reply_refused_by_the_desk_is_400_reply_refused(agent, sending_account, deliver):
    ticket = deliver()
    email = ticket.customer.identities.get(kind="email")
    response = client_for(agent).post(
        f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "hi", "identity": email.pk}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "reply_refused"
    assert "has not written on a channel we can reply on as email ada@example.com" in response.json()["detail"]


@pytest.mark.parametrize(
    "body, field",
    [({}, "text"), ({"text": "   "}, "text"), ({"text": "hi", "visibility": "loud"}, "visibility"),
     ({"text": "hi", "identity": 424242}, "identity")],
)
def test_malformed_reply_is_400_naming_the_field(agent, sending_account, deliver, body, field):
    ticket = deliver()
    response = client_for(agent).post(f"/api/v1/tickets/{ticket.pk}/replies/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid" and field in response.json()["fields"]


def test_identity_of_another_customer_is_refused(agent, sending_account, deliver):
    ticket = deliver()
    other = deliver(id="m-2", thread="t-2", author={"id": "u-2", "name": "Eve"})
    foreign = other.customer.identities.get()
    response = client_for(agent).post(
        f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "hi", "identity": foreign.pk}, format="json"
    )
    assert response.status_code == 400 and "has no identity" in response.json()["detail"]


def test_note_is_201_and_internal(agent, api_account, deliver):
    ticket = deliver()
    response = client_for(agent).post(f"/api/v1/tickets/{ticket.pk}/notes/", {"text": "VIP customer"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "note" and body["visibility"] == "private" and body["channel"] is None
    assert not OutboundMessage.objects.exists()
    assert ticket.events.filter(action="note_added", actor_user=agent).exists()


@pytest.mark.parametrize(
    "error, status, code",
    [
        (CapabilityError("the API channel cannot send private replies"), 400, "capability"),
        (ReplyWindowClosed("the customer last wrote 9 days ago"), 400, "reply_window_closed"),
        (PermanentSendError("the recipient was removed"), 400, "send_permanent"),
        (ReplyTooLong("too long", length=9, limit=5), 400, "reply_too_long"),
        (RetryableSendError("the API is down"), 503, "send_retryable"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_every_plugin_refusal_is_a_json_error(agent, sending_account, deliver, monkeypatch, error, status, code):
    def refuse(self, reply):  # type: ignore[no-untyped-def]
        raise error

    monkeypatch.setattr(ApiChannel, "check_reply", refuse)
    ticket = deliver()
    response = client_for(agent).post(f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "hi"}, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"] == code and response.json()["detail"].startswith(str(error))
    assert not OutboundMessage.objects.exists()
