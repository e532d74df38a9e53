"""The one ingest service every channel goes through: customers, threading, reopen, audit."""

from datetime import datetime, timedelta, timezone

import pytest
from django.utils import timezone as djtz

from omnidesk.customers.models import Customer, Identity
from omnidesk.plugins.contract import (
    Attachment,
    Author,
    DeliveryUpdate,
    IdentityKind,
    IdentityRef,
    InboundMessage,
    MessageUpdate,
)
from omnidesk.tickets.ingest import delivery_update_apply, message_ingest, message_update_apply
from omnidesk.tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def msg(ext="m1", who="u1", thread="t1", **kw):
    also = kw.pop("also", ())
    author = kw.pop("author", Author(IdentityRef(IdentityKind.EXTERNAL, who, "acme-api"), "Ada", also=also))
    return InboundMessage(
        external_id=ext, event_type="message", thread_key=thread, author=author, text=kw.pop("text", "help"),
        sent_at=kw.pop("sent_at", T0), **kw,
    )


def ingest(account, item, received=None):
    return message_ingest(account=account, item=item, received_at=received or T0 + timedelta(seconds=3))


def test_follow_up_in_the_same_thread_joins_the_ticket(api_account):
    first = ingest(api_account, msg("m1"))
    second = ingest(api_account, msg("m2", sent_at=T0 + timedelta(minutes=5)))
    assert first.ticket_created and not second.ticket_created
    assert second.message.ticket_id == first.message.ticket_id
    ticket = Ticket.objects.get()
    assert ticket.customer_first_message_at == T0
    assert ticket.last_customer_message_at == T0 + timedelta(minutes=5)


def test_same_external_id_is_a_duplicate(api_account):
    ingest(api_account, msg("m1"))
    again = ingest(api_account, msg("m1", text="changed"))
    assert again.duplicate and Message.objects.count() == 1


def test_two_people_in_one_public_conversation_are_two_tickets(api_account):
    a = ingest(api_account, msg("m1", who="u1", thread="conv"))
    b = ingest(api_account, msg("m2", who="u2", thread="conv"))
    assert a.message.ticket_id != b.message.ticket_id


def test_reply_to_a_solved_ticket_reopens_it(api_account):
    ticket = ingest(api_account, msg("m1")).message.ticket
    Ticket.objects.filter(pk=ticket.pk).update(status="solved", solved_at=djtz.now())
    ingest(api_account, msg("m2"))
    ticket.refresh_from_db()
    assert (ticket.status, ticket.reopen_count, ticket.solved_at) == ("open", 1, None)
    assert ticket.events.filter(action="reopened", old="solved", new="open").exists()


def test_an_automated_message_does_not_reopen(api_account):
    ticket = ingest(api_account, msg("m1")).message.ticket
    Ticket.objects.filter(pk=ticket.pk).update(status="solved")
    ingest(api_account, msg("m2", automated=True))
    ticket.refresh_from_db()
    assert ticket.status == "solved"


def test_a_closed_ticket_gets_a_follow_up_ticket(api_account):
    old = ingest(api_account, msg("m1")).message.ticket
    Ticket.objects.filter(pk=old.pk).update(status="closed")
    new = ingest(api_account, msg("m2")).message.ticket
    assert new.pk != old.pk
    assert ingest(api_account, msg("m3")).message.ticket_id == new.pk  # the thread now points at the new one


def test_references_thread_even_with_another_thread_key(api_account):
    first = ingest(api_account, msg("m1", thread="a"))
    reply = ingest(api_account, msg("m2", thread="b", references=("unknown", "m1")))
    assert reply.message.ticket_id == first.message.ticket_id
    assert "threaded by reference m1" in reply.message.ticket.events.last().note


def test_matching_never_crosses_customers(api_account):
    first = ingest(api_account, msg("m1", who="u1"))
    other = ingest(api_account, msg("m2", who="u2", thread="x", references=("m1",), ticket_ref=first.message.ticket_id))
    assert other.ticket_created and other.message.ticket_id != first.message.ticket_id


def test_quoted_ticket_number_of_the_same_customer_threads(api_account):
    first = ingest(api_account, msg("m1", thread="a"))
    again = ingest(api_account, msg("m2", thread="b", ticket_ref=first.message.ticket_id))
    assert again.message.ticket_id == first.message.ticket_id


def test_known_email_links_a_new_identity_to_the_same_customer(api_account):
    email = IdentityRef(IdentityKind.EMAIL, "Ada@Example.com")
    ingest(api_account, msg("m1", who="u1", also=(email,)))
    ingest(api_account, msg("m2", who="other-system-id", thread="t9", also=(IdentityRef(IdentityKind.EMAIL, "ada@example.com"),)))
    assert Customer.objects.count() == 1
    assert set(Identity.objects.values_list("kind", "value")) == {
        ("external", "u1"), ("external", "other-system-id"), ("email", "ada@example.com"),
    }


def test_invalid_secondary_identity_is_noted_not_fatal(api_account):
    out = ingest(api_account, msg("m1", also=(IdentityRef(IdentityKind.PHONE, "not a number"),)))
    assert any("not a phone number" in n for n in out.message.metadata["notes"])


def test_phone_numbers_are_e164_with_the_accounts_region(api_account):
    api_account.default_region = "GB"
    api_account.save()
    ingest(api_account, msg("m1", also=(IdentityRef(IdentityKind.PHONE, "020 7946 0958"),)))
    assert Identity.objects.filter(kind="phone", value="+442079460958").exists()


def test_reach_is_kept_on_the_identity_and_snapshotted_on_the_message(api_account):
    author = Author(IdentityRef(IdentityKind.TWITTER, "42"), "Ada", followers=10_000, verified=True)
    first = ingest(api_account, msg("m1", author=author))
    later = Author(IdentityRef(IdentityKind.TWITTER, "42"), "Ada", followers=12_000, verified=True)
    ingest(api_account, msg("m2", author=later))
    assert Identity.objects.get(kind="twitter").followers == 12_000
    first.message.refresh_from_db()
    assert first.message.reach_followers == 10_000


@pytest.mark.parametrize(
    "sent_at, note",
    [
        (T0 + timedelta(hours=2), "in the future"),
        (datetime(1970, 1, 1, tzinfo=timezone.utc), "implausibly old"),
        (None, "no send time"),
    ],
)
def test_absurd_platform_clocks_fall_back_to_receipt_time(api_account, sent_at, note):
    out = ingest(api_account, msg("m1", sent_at=sent_at))
    assert out.message.sent_at == T0 + timedelta(seconds=3)
    assert note in out.message.metadata["clock_note"]


def test_html_is_sanitized_and_text_derived(api_account):
    html = '<p onclick="x()">Hi<script>alert(1)</script> <a href="javascript:alert(2)">there</a></p><img src=x onerror="y()">'
    out = ingest(api_account, msg("m1", text="", html=html))
    assert "script" not in out.message.html and "onerror" not in out.message.html
    assert "javascript:" not in out.message.html and "onclick" not in out.message.html
    assert out.message.text == "Hi there"


def test_attachments_are_stored_with_limits(api_account, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.OMNIDESK = {**settings.OMNIDESK, "ATTACHMENT_MAX_BYTES": 10}
    files = (
        Attachment("a.txt", "text/plain", b"hello"),
        Attachment("big.bin", "application/octet-stream", b"x" * 11),
        Attachment("run.exe", "application/x-msdownload", b"MZ"),
    )
    out = ingest(api_account, msg("m1", attachments=files))
    stored = list(out.message.attachments.all())
    assert [(a.filename, a.size) for a in stored] == [("a.txt", 5)]
    assert stored[0].file.read() == b"hello"
    notes = " ".join(out.message.metadata["notes"])
    assert "big.bin" in notes and "over the limit" in notes and "run.exe" in notes and "blocked" in notes


def _outbound(account, ticket, ext="out-1"):
    return Message.objects.create(
        ticket=ticket, account=account, external_id=ext, direction="out", visibility="private", text="hi",
        received_at=T0, sent_at=T0, state="sent",
    )


def test_delivery_updates_never_go_backwards(api_account):
    ticket = ingest(api_account, msg("m1")).message.ticket
    out = _outbound(api_account, ticket)
    delivery_update_apply(account=api_account, update=DeliveryUpdate("out-1", "read"))
    delivery_update_apply(account=api_account, update=DeliveryUpdate("out-1", "delivered"))
    out.refresh_from_db()
    assert out.state == "read"
    assert "no outbound message" in delivery_update_apply(account=api_account, update=DeliveryUpdate("nope", "read"))


def test_edited_and_removed_messages_keep_the_original(api_account):
    first = ingest(api_account, msg("m1", text="original")).message
    message_update_apply(account=api_account, update=MessageUpdate("m1", "edited", text="changed"))
    first.refresh_from_db()
    assert (first.text, first.state, first.metadata["original_text"]) == ("changed", "edited", "original")
    message_update_apply(account=api_account, update=MessageUpdate("m1", "removed"))
    first.refresh_from_db()
    assert first.state == "removed" and first.ticket.events.filter(action="message_removed").exists()
