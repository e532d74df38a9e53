"""Files on agent replies: stored on the message, sent by the outbox, refused with a reason."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.errors import CapabilityError
from omnidesk.plugins.services import channel_account_save
from omnidesk.tickets.models import Attachment, Message, OutboundMessage, Ticket
from omnidesk.tickets.replies import ReplyRefused, reply_create, reply_for_outbound
from tests.conftest import api_body
from tests.support.email_ticket import email_account, email_ticket

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.fixture
def agent():  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user("alice")


@pytest.fixture
def mail_ticket() -> Ticket:
    return email_ticket(email_account())


def test_files_are_stored_on_the_reply_and_rebuilt_for_every_send(mail_ticket, agent):  # type: ignore[no-untyped-def]
    message = reply_create(
        ticket=mail_ticket, user=agent, text="Here it is.",
        attachments=[("invoice.pdf", "application/pdf", PDF), ("notes.txt", "text/plain", b"paid\n")],
    )
    stored = list(message.attachments.order_by("pk"))
    assert [(a.filename, a.content_type, a.size) for a in stored] == [
        ("invoice.pdf", "application/pdf", len(PDF)), ("notes.txt", "text/plain", 5),
    ]
    assert stored[0].file.read() == PDF
    outbound = OutboundMessage.objects.get(message=message)
    for _attempt in range(2):  # a retry rebuilds the same files from storage
        reply = reply_for_outbound(outbound)
        assert [(a.filename, a.content_type, a.content) for a in reply.attachments] == [
            ("invoice.pdf", "application/pdf", PDF), ("notes.txt", "text/plain", b"paid\n"),
        ]


def test_the_same_bytes_are_stored_once(mail_ticket, agent):  # type: ignore[no-untyped-def]
    first = reply_create(ticket=mail_ticket, user=agent, text="one", attachments=[("a.pdf", "application/pdf", PDF)])
    second = reply_create(ticket=mail_ticket, user=agent, text="two", attachments=[("b.pdf", "application/pdf", PDF)])
    assert first.attachments.get().file.name == second.attachments.get().file.name


def test_a_channel_without_attachments_refuses_the_reply(api_account, post_hook, agent):  # type: ignore[no-untyped-def]
    channel_account_save(kind="api", slug="acme-api", name="Acme", config={"callback_url": "http://127.0.0.1:9/"},
                         account=api_account)
    post_hook("acme-api", api_body(public=True))
    inbound_events_apply()
    ticket = Ticket.objects.get()
    with pytest.raises(CapabilityError, match="the API channel cannot send attachments"):
        reply_create(ticket=ticket, user=agent, text="see file", attachments=[("a.pdf", "application/pdf", PDF)])
    assert not Message.objects.filter(direction="out").exists() and not Attachment.objects.exists()


def test_over_the_desk_limit_refuses_the_whole_reply(mail_ticket, agent, settings):  # type: ignore[no-untyped-def]
    settings.OMNIDESK = {**settings.OMNIDESK, "ATTACHMENT_MAX_BYTES": 10}
    with pytest.raises(ReplyRefused, match=r"'invoice.pdf' cannot be sent: \d+ bytes is over the limit of 10"):
        reply_create(ticket=mail_ticket, user=agent, text="Here", attachments=[
            ("ok.txt", "text/plain", b"fine"), ("invoice.pdf", "application/pdf", PDF),
        ])
    with pytest.raises(ReplyRefused, match="type application/x-msdownload is blocked"):
        reply_create(ticket=mail_ticket, user=agent, text="Here", attachments=[("run.exe", "application/x-msdownload", b"MZ")])
    assert not Message.objects.filter(direction="out").exists() and not Attachment.objects.exists()


def test_over_the_channel_limit_is_refused_by_the_plugin(mail_ticket, agent, monkeypatch):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from channels_plugins.email.adapter import EmailChannel

    monkeypatch.setattr(EmailChannel, "capabilities", replace(EmailChannel.capabilities, max_attachment_bytes=8))
    with pytest.raises(CapabilityError, match=r"'invoice.pdf' is \d+ bytes; Email \(IMAP/SMTP\) allows 8"):
        reply_create(ticket=mail_ticket, user=agent, text="Here", attachments=[("invoice.pdf", "application/pdf", PDF)])
    assert not Message.objects.filter(direction="out").exists()
