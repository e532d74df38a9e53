"""A NUL character anywhere in what a customer sent: stored (as U+FFFD), never a failed event.

PostgreSQL's text and jsonb refuse U+0000, so without the core's cleaning such an event failed on
every retry and the complaint never reached the queue (SQLite stores it; the CI database is
PostgreSQL, where this test matters).
"""

import pytest

from omnidesk.customers.models import Identity
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.contract import Author, IdentityKind, IdentityRef, InboundMessage
from omnidesk.plugins.storable import storable
from omnidesk.tickets.models import Message, Ticket
from tests.conftest import api_body

pytestmark = pytest.mark.django_db


def test_a_nul_in_text_subject_name_and_ids_is_stored_as_a_replacement_character(api_account, post_hook):
    body = api_body(id="m\u00001", thread="t\u00001", text="broken\u0000 order", subject="Refund\u0000",
                    author={"id": "u\u00001", "name": "Ada\u0000", "email": "ada@example.com"})
    resp = post_hook("acme-api", body)
    assert resp.status_code == 200, resp.content

    report = inbound_events_apply()

    event = InboundEvent.objects.get()
    assert (event.status, event.error) == ("processed", "")
    assert report.applied == 1
    message = Message.objects.get()
    assert (message.text, message.external_id) == ("broken\ufffd order", "m\ufffd1")
    assert Ticket.objects.get().subject == "Refund\ufffd"
    assert message.ticket.customer.display_name == "Ada\ufffd"
    assert Identity.objects.filter(kind="external", value="u\ufffd1").exists()


def test_two_ids_that_differ_only_by_a_nul_stay_two_messages(api_account, post_hook):
    post_hook("acme-api", api_body(id="m1"))
    post_hook("acme-api", api_body(id="m\u00001"))
    inbound_events_apply()
    assert sorted(Message.objects.values_list("external_id", flat=True)) == ["m1", "m\ufffd1"]


def test_an_item_without_nul_is_returned_as_the_same_object():
    item = InboundMessage(external_id="m1", event_type="message", thread_key="t",
                          author=Author(IdentityRef(IdentityKind.EMAIL, "a@example.com")), text="hello",
                          metadata=(("message-id", "<x@y>"),))
    assert storable(item) is item


def test_nested_strings_are_cleaned_and_bytes_left_alone():
    item = InboundMessage(external_id="m1", event_type="message", thread_key="t",
                          author=Author(IdentityRef(IdentityKind.EMAIL, "a@example.com"), display_name="A\x00"),
                          text="x", metadata=(("k", "v\x00"),), references=("r\x00",))
    cleaned = storable(item)
    assert cleaned.author.display_name == "A\ufffd"
    assert cleaned.author.identity is item.author.identity
    assert cleaned.author.identity.kind is IdentityKind.EMAIL
    assert cleaned.metadata == (("k", "v\ufffd"),)
    assert cleaned.references == ("r\ufffd",)
