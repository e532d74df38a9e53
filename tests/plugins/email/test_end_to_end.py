"""The whole path with real peers: Dovecot → poller (IDLE) → tickets → agent reply → SMTP sink → customer reply."""

from __future__ import annotations

import threading
import time
from email.utils import make_msgid

import pytest
from django.contrib.auth import get_user_model

from omnidesk.inbox.models import Cursor, InboundEvent
from omnidesk.inbox.polling import PollReport, account_poll
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.services import account_plugin, channel_account_save
from omnidesk.tickets.models import Message, Ticket
from omnidesk.tickets.outbox import outbound_send
from omnidesk.tickets.replies import reply_create

from .conftest import ADDRESS, SECRETS, Sink, email_config
from .dovecot import Dovecot

pytestmark = pytest.mark.django_db(transaction=True)


def customer_mail(*, subject: str, text: str, in_reply_to: str = "", references: str = "", sender: str = "ada@example.com") -> tuple[bytes, str]:
    msgid = make_msgid(domain="example.com")
    head = [
        f"From: Ada Lovelace <{sender}>", f"To: {ADDRESS}", f"Subject: {subject}",
        "Date: Tue, 14 Oct 2025 09:00:00 +0000", f"Message-ID: {msgid}",
    ]
    if in_reply_to:
        head.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        head.append(f"References: {references}")
    head += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(head) + "\r\n\r\n" + text + "\r\n").encode(), msgid.strip("<>")


@pytest.fixture
def account(dovecot: Dovecot, mailbox: str, smtp_sink: Sink):  # type: ignore[no-untyped-def]
    from omnidesk.routing.models import Group

    group = Group.objects.get_or_create(name="Support")[0]
    acc = channel_account_save(
        kind="email", slug="support", name="Support mailbox",
        config=email_config(dovecot, mailbox, smtp_sink, idle_timeout_s=2.0, ack="seen"), secrets=SECRETS,
        default_group_id=group.pk,
    )
    yield acc
    account_plugin(acc).close()  # type: ignore[attr-defined]


def poll_while(account, action) -> tuple[PollReport, float]:  # type: ignore[no-untyped-def]
    """Run one poll (IDLE) in a thread, do `action` 0.3 s later, return the report and its duration."""
    out: dict[str, PollReport] = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", account_poll(account=account)))
    started = time.monotonic()
    thread.start()
    time.sleep(0.3)
    action()
    thread.join(30)
    return out["r"], time.monotonic() - started


def apply_all() -> None:
    inbound_events_apply(event_ids=list(InboundEvent.objects.filter(status="pending").values_list("pk", flat=True)))


def test_mail_to_ticket_to_reply_to_same_ticket(account, dovecot: Dovecot, mailbox: str, smtp_sink: Sink) -> None:  # type: ignore[no-untyped-def]
    raw, first_id = customer_mail(subject="Printer on fire", text="My printer is on fire. Help!")
    report, took = poll_while(account, lambda: dovecot.append(mailbox, raw))
    assert report.error == "" and report.stored == 1, report
    assert took < 5, f"IDLE took {took:.1f}s"
    apply_all()
    ticket = Ticket.objects.get()
    inbound = Message.objects.get(external_id=first_id)
    assert inbound.ticket == ticket and inbound.text == "My printer is on fire. Help!"

    agent = get_user_model().objects.create_user("alice")
    reply = reply_create(ticket=ticket, user=agent, text="Please unplug it.", html="<p>Please <b>unplug</b> it.</p>")
    outcome = outbound_send(outbound_id=reply.outbound.pk)
    assert outcome.status == "sent", outcome
    sent = smtp_sink.wait(1)[0]
    msg = sent.message
    reply.refresh_from_db()
    assert sent.rcpt_tos == ["ada@example.com"] and sent.mail_from == ADDRESS
    assert msg["Message-ID"] == f"<{reply.external_id}>"
    assert msg["In-Reply-To"] == f"<{first_id}>"
    assert first_id in msg["References"]
    assert f"[#{ticket.pk}]" in msg["Subject"] and msg["Subject"].startswith("Re: Printer on fire")
    assert msg.get_body(("plain",)).get_content().strip() == "Please unplug it."
    assert "<b>unplug</b>" in msg.get_body(("html",)).get_content()
    assert msg["Auto-Submitted"] is None

    # The customer answers THAT mail, with a new subject: threads by In-Reply-To.
    answer, answer_id = customer_mail(subject="still burning", text="It is still burning.", in_reply_to=reply.external_id)
    report, _ = poll_while(account, lambda: dovecot.append(mailbox, answer))
    assert report.stored == 1, report
    # The imported mail was acknowledged (\Seen) only after the cursor came back committed.
    apply_all()
    assert Message.objects.get(external_id=answer_id).ticket == ticket
    assert Ticket.objects.count() == 1

    # Our own reply, had it come back (BCC to the support address), is dropped as a loop.
    report, _ = poll_while(account, lambda: dovecot.append(mailbox, sent.content))
    apply_all()
    assert InboundEvent.objects.order_by("-pk").first().status == "ignored"

    # A bounce of our reply marks it failed and the address undeliverable; no ticket.
    bounce = _bounce_of(sent.content)
    report, _ = poll_while(account, lambda: dovecot.append(mailbox, bounce))
    apply_all()
    reply.refresh_from_db()
    assert reply.state == "failed" and "5.1.1" in reply.state_reason
    assert reply.outbound.to_identity.undeliverable
    assert Ticket.objects.count() == 1
    account_poll(account=account)  # acknowledges the last one
    with dovecot.client(mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        assert len(client.search(["UNSEEN"])) == 0


def _bounce_of(original: bytes) -> bytes:
    head = (
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\nTo: support@desk.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nDate: Tue, 14 Oct 2025 10:00:00 +0000\r\n"
        f"Message-ID: {make_msgid(domain='mx.example.com')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nUndeliverable.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; ada@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        "--B\r\nContent-Type: message/rfc822\r\n\r\n"
    )
    return head.encode() + original + b"\r\n--B--\r\n"


def test_killed_between_commit_and_cursor_save(account, dovecot: Dovecot, mailbox: str) -> None:  # type: ignore[no-untyped-def]
    raws = [customer_mail(subject=f"Case {n}", text=f"Text {n}", sender=f"c{n}@example.com")[0] for n in range(3)]
    for raw in raws:
        dovecot.append(mailbox, raw)
    cursor = Cursor.objects.get_or_create(account=account, name="default")[0]
    before = cursor.value
    report = account_poll(account=account)
    assert report.stored == 3
    # Killed after the events were committed but before the cursor was saved:
    Cursor.objects.filter(pk=cursor.pk).update(value=before, not_before=None)
    report = account_poll(account=account)
    assert report.stored == 0 and report.duplicates == 3
    account_poll(account=account)  # this one acknowledges (\Seen) the three
    apply_all()
    assert InboundEvent.objects.count() == 3 and Message.objects.count() == 3 and Ticket.objects.count() == 3
    with dovecot.client(mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        assert len(client.search(["SEEN"])) == 3


def test_uidvalidity_change_makes_no_duplicate_messages(account, dovecot: Dovecot, mailbox: str) -> None:  # type: ignore[no-untyped-def]
    from omnidesk.plugins.services import channel_account_save as save

    account = save(
        kind="email", slug="support", name="Support mailbox", account=account,
        config={**account.config, "folders": ["Support"], "ack": "leave"}, secrets=SECRETS,
    )
    raws = [customer_mail(subject=f"Case {n}", text=f"Text {n}", sender=f"c{n}@example.com")[0] for n in range(2)]
    for raw in raws:
        dovecot.append(mailbox, raw, folder="Support")
    assert account_poll(account=account).stored == 2
    account_poll(account=account)
    apply_all()
    with dovecot.client(mailbox) as client:
        client.delete_folder("Support")
        client.create_folder("Support")
        for raw in raws:
            client.append("Support", raw)
    account_poll(account=account)
    account_poll(account=account)
    apply_all()
    assert Message.objects.count() == 2 and Ticket.objects.count() == 2
    # "leave" sets no keyword, so the rescan stored the two again as content-keyed events; they
    # applied as duplicates. A second rescan of the same bytes stores nothing new.
    assert InboundEvent.objects.count() == 4
    assert all(e.summary.get("duplicates") == 1 for e in InboundEvent.objects.filter(dedupe_key__startswith="mid:"))
