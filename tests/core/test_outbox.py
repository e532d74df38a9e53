"""Replies go through the outbox: never lost when the channel is down, never silently failed."""

import json

import pytest
from django.contrib.auth import get_user_model

from channels_plugins.api.client import sign
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.errors import CapabilityError, ReplyTooLong
from omnidesk.plugins.services import channel_account_save
from omnidesk.tickets.models import OutboundMessage, Ticket
from omnidesk.tickets.outbox import outbound_send, outbox_due_ids
from omnidesk.tickets.replies import ReplyRefused, note_create, reply_create
from tests.conftest import api_body
from tests.support.http import Script, http_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def remote():
    with http_server(Script(answers=[])) as script:
        yield script


@pytest.fixture
def ticket(api_account, post_hook, remote):
    channel_account_save(
        kind="api", slug="acme-api", name="Acme", config={"callback_url": remote.url + "/cb"}, account=api_account
    )
    post_hook("acme-api", api_body(public=True))
    inbound_events_apply()
    return Ticket.objects.get()


@pytest.fixture
def agent():
    return get_user_model().objects.create_user("alice")


def test_reply_is_signed_sent_and_recorded(ticket, agent, remote, django_capture_on_commit_callbacks):
    remote.answer(200, {"id": "widget-77"})
    with django_capture_on_commit_callbacks() as callbacks:
        message = reply_create(ticket=ticket, user=agent, text="We are on it.")
    assert len(callbacks) == 1  # the nudge to the outbox worker, after commit
    assert (message.visibility, message.state) == ("public", "queued")  # the customer's last message was public
    ticket.refresh_from_db()
    assert ticket.first_response_at is not None and ticket.status == "open"

    assert outbound_send(outbound_id=message.outbound.pk).status == "sent"
    got = remote.received[0]
    assert got.headers["X-Omnidesk-Signature"] == sign("s3cret", got.body)
    sent = json.loads(got.body)
    assert (sent["text"], sent["to"], sent["in_reply_to"], sent["public"]) == ("We are on it.", {"id": "u-1"}, "m-1", True)
    assert got.headers["Idempotency-Key"] == sent["id"]
    message.refresh_from_db()
    assert (message.state, message.external_id) == ("sent", "widget-77")
    assert outbound_send(outbound_id=message.outbound.pk).status == "not-queued"  # never sent twice
    assert len(remote.received) == 1


def test_a_channel_outage_retries_with_backoff_and_loses_nothing(ticket, agent, remote):
    remote.answer(503, {"error": "maintenance"}, **{"Retry-After": "7"})
    remote.answer(200, {"id": "w-1"})
    message = reply_create(ticket=ticket, user=agent, text="hello")
    outcome = outbound_send(outbound_id=message.outbound.pk)
    assert outcome.status == "retry" and outcome.retry_in_s == 7
    row = OutboundMessage.objects.get()
    assert (row.status, row.attempts) == ("queued", 1) and "503" in row.last_error
    assert outbound_send(outbound_id=row.pk).status == "not-due"
    OutboundMessage.objects.update(next_attempt_at=None)
    assert outbox_due_ids() == [row.pk]
    assert outbound_send(outbound_id=row.pk).status == "sent"


def test_a_permanent_refusal_shows_on_the_ticket(ticket, agent, remote):
    remote.answer(422, {"error": "user blocked us"})
    message = reply_create(ticket=ticket, user=agent, text="hello")
    assert outbound_send(outbound_id=message.outbound.pk).status == "failed"
    message.refresh_from_db()
    assert message.state == "failed" and "user blocked us" in message.state_reason
    event = ticket.events.get(action="reply_failed")
    assert event.new == "send_permanent" and "422" in event.note


def test_revoked_credentials_hold_replies_until_fixed(ticket, agent, remote, api_account):
    remote.answer(401, {"error": "token revoked"})
    remote.answer(200, {"id": "w-2"})
    message = reply_create(ticket=ticket, user=agent, text="hello")
    assert outbound_send(outbound_id=message.outbound.pk).status == "retry"
    api_account.refresh_from_db()
    assert api_account.needs_reauthorization and "token revoked" in api_account.last_error
    OutboundMessage.objects.update(next_attempt_at=None)
    assert outbound_send(outbound_id=message.outbound.pk).status == "waiting-for-reauthorization"
    api_account.needs_reauthorization = False
    api_account.save()
    assert outbound_send(outbound_id=message.outbound.pk).status == "sent"


def test_a_sender_that_died_mid_send_is_requeued_marked_interrupted(ticket, agent, remote):
    """The API channel cannot look a reply up: it gets it again under the same Idempotency-Key."""
    from datetime import timedelta

    from django.utils import timezone

    remote.answer(200, {"id": "widget-1"})
    remote.answer(200, {"id": "widget-1"})
    message = reply_create(ticket=ticket, user=agent, text="hello")
    assert outbound_send(outbound_id=message.outbound.pk).status == "sent"
    # as if the sender had died after the receiver got it, before the outbox recorded it
    OutboundMessage.objects.update(status="sending", claimed_at=timezone.now() - timedelta(minutes=10))
    fresh = OutboundMessage.objects.create(message=note_create(ticket=ticket, user=agent, text="x"),
                                           account=message.account, to_identity=message.outbound.to_identity,
                                           status="sending", claimed_at=timezone.now())
    assert outbox_due_ids() == [message.outbound.pk]  # a claim still in time is left to its sender
    row = OutboundMessage.objects.get(pk=message.outbound.pk)
    assert (row.status, row.error_code) == ("queued", "interrupted")
    assert OutboundMessage.objects.get(pk=fresh.pk).status == "sending"
    assert outbound_send(outbound_id=row.pk).status == "sent"
    first, again = remote.received
    assert again.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    row.refresh_from_db()
    assert (row.status, row.error_code) == ("sent", "")


def test_capabilities_are_checked_before_anything_is_stored(ticket, agent):
    with pytest.raises(ReplyTooLong) as exc:
        reply_create(ticket=ticket, user=agent, text="x" * 100_001)
    assert exc.value.length == 100_001 and "100000" in str(exc.value)
    assert OutboundMessage.objects.count() == 0


def test_an_account_without_callback_cannot_reply(api_account, post_hook, agent):
    post_hook("acme-api", api_body())
    inbound_events_apply()
    with pytest.raises(CapabilityError.__mro__[1]) as exc:  # PermanentSendError
        reply_create(ticket=Ticket.objects.get(), user=agent, text="hi")
    assert "no callback_url" in str(exc.value)


def test_a_reply_needs_a_customer_channel(ticket, agent):
    other = get_user_model().objects.create_user("bob")
    from omnidesk.customers.models import Customer, Identity

    stranger = Identity.objects.create(customer=Customer.objects.create(), kind="email", value="x@example.com")
    with pytest.raises(ReplyRefused, match="another customer"):
        reply_create(ticket=ticket, user=other, text="hi", identity=stranger)


def test_notes_are_internal(ticket, agent):
    note = note_create(ticket=ticket, user=agent, text="call them tomorrow")
    assert (note.kind, note.visibility, note.account) == ("note", "private", None)
    assert OutboundMessage.objects.count() == 0
    ticket.refresh_from_db()
    assert ticket.first_response_at is None


def test_a_delivery_to_a_new_identity_links_the_answer_to_the_same_ticket(ticket, api_account):
    """Comment → private reply: the customer answers from a new id; that answer lands on this ticket."""
    from omnidesk.customers.models import Identity
    from omnidesk.plugins.contract import Author, IdentityKind, IdentityRef, InboundMessage
    from omnidesk.tickets.ingest import message_ingest
    from omnidesk.tickets.threading import conversation_link

    new_id = IdentityRef(IdentityKind.EXTERNAL, "inbox-user-9", "acme-api")
    conversation_link(ticket=ticket, account=api_account, recipient=new_id, thread_key="dm:inbox-user-9")
    assert Identity.objects.get(value="inbox-user-9").customer_id == ticket.customer_id
    answer = InboundMessage(external_id="dm-1", event_type="message", thread_key="dm:inbox-user-9",
                            author=Author(new_id), text="here is my order number")
    from django.utils import timezone

    assert message_ingest(account=api_account, item=answer, received_at=timezone.now()).message.ticket_id == ticket.pk


def test_a_delivery_never_takes_another_customers_identity(ticket, api_account):
    from omnidesk.customers.models import Customer, Identity
    from omnidesk.plugins.contract import IdentityKind, IdentityRef
    from omnidesk.tickets.threading import conversation_link

    other = Identity.objects.create(customer=Customer.objects.create(), kind="external", namespace="acme-api", value="taken")
    conversation_link(ticket=ticket, account=api_account, recipient=IdentityRef(IdentityKind.EXTERNAL, "taken", "acme-api"),
                      thread_key="dm:taken")
    other.refresh_from_db()
    assert other.customer_id != ticket.customer_id


def test_new_credentials_clear_needs_reauthorization(api_account):
    api_account.needs_reauthorization = True
    api_account.save()
    channel_account_save(kind="api", slug="acme-api", name="Acme", config={}, account=api_account)
    api_account.refresh_from_db()
    assert api_account.needs_reauthorization  # nothing changed: still waiting
    channel_account_save(kind="api", slug="acme-api", name="Acme", config={}, secrets={"secret": "rotated"}, account=api_account)
    api_account.refresh_from_db()
    assert not api_account.needs_reauthorization
