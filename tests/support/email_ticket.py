"""An email ticket made by the real pipeline, without an IMAP server: the mail is stored as if fetched."""

from __future__ import annotations

from typing import Any

from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
from omnidesk.plugins.contract import RawEvent
from omnidesk.plugins.services import channel_account_save
from omnidesk.tickets.models import Ticket

ADDRESS = "support@desk.example"


def email_account(*, slug: str = "support-mail", group_id: int | None = None, **config: Any):  # type: ignore[no-untyped-def]
    """A never-polled email account; pass smtp_host/smtp_port/smtp_security to send through a sink."""
    settings = {
        "address": ADDRESS, "display_name": "Desk Support", "enabled_fetch": False,
        "smtp_host": "127.0.0.1", "smtp_port": 9, "smtp_security": "none", **config,  # port 9: never reached
    }
    return channel_account_save(kind="email", slug=slug, name="Support mailbox", config=settings, default_group_id=group_id)


def email_ticket(account, *, subject: str = "Invoice missing", sender: str = "ada@example.com") -> Ticket:  # type: ignore[no-untyped-def]
    mail = "\r\n".join([
        f"From: Ada Lovelace <{sender}>", f"To: {ADDRESS}", f"Subject: {subject}",
        "Date: Tue, 14 Oct 2025 09:00:00 +0000", "Message-ID: <ada.1@example.com>",
        "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", "Please send me the invoice.", "",
    ]).encode()
    inbound_event_store(account=account, raw=RawEvent(body=mail))
    report = inbound_events_apply()
    assert report.failed == 0, report
    return Ticket.objects.get(messages__account=account, messages__external_id="ada.1@example.com")
