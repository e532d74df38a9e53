"""An agent's reply with a file, from the desk through the outbox to a real SMTP server."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from omnidesk.tickets.outbox import outbound_send
from omnidesk.tickets.replies import reply_create
from tests.support.email_ticket import email_account, email_ticket

from .conftest import Sink

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.mark.usefixtures("media_root")
def test_a_reply_with_a_pdf_arrives_as_a_mime_attachment(smtp_sink: Sink) -> None:
    account = email_account(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, smtp_security="none")
    ticket = email_ticket(account)
    agent = get_user_model().objects.create_user("alice")
    message = reply_create(
        ticket=ticket, user=agent, text="Your invoice is attached.",
        attachments=[("Rechnung März.pdf", "application/pdf", PDF)],
    )
    assert outbound_send(outbound_id=message.outbound.pk).status == "sent"
    mail = smtp_sink.wait(1)[0].message
    assert mail["To"] == "ada@example.com"
    assert mail.get_body(("plain",)).get_content().strip() == "Your invoice is attached."
    [part] = list(mail.iter_attachments())
    assert part.get_content_type() == "application/pdf"
    assert part.get_content_disposition() == "attachment"
    assert part.get_filename() == "Rechnung März.pdf"
    assert part.get_content() == PDF
