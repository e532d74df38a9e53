"""send() against a real SMTP server (aiosmtpd): headers, threading, retries and refusals."""

from __future__ import annotations

import pytest

from channels_plugins.email.adapter import EmailChannel, EmailConfig
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import (
    Attachment,
    IdentityKind,
    IdentityRef,
    Ignored,
    OutboundReply,
    PermanentSendError,
    RawEvent,
    RetryableSendError,
)

from tests.services.procs import free_port

from .conftest import ADDRESS, Sink, email_config

def make(sink: Sink | None, **overrides: object) -> EmailChannel:
    config = email_config(None, "", sink, **overrides)
    return EmailChannel(load_config(EmailConfig, config, {}), account_slug="support")  # type: ignore[arg-type]


def reply(**changes: object) -> OutboundReply:
    base = dict(
        idempotency_key="3f1c9a7e5b2d4c6e8f0a1b2c3d4e5f60",
        to=IdentityRef(IdentityKind.EMAIL, "ada@example.com"),
        text="We are on it.",
        visibility="private",
        ticket_ref=42,
        subject="Re: Printer on fire",
        thread_key="root.1@example.com",
        in_reply_to="CAH8yC8k@mail.gmail.com",
        references=("CAH8yC8k@mail.gmail.com",),
    )
    base.update(changes)
    return OutboundReply(**base)  # type: ignore[arg-type]


def test_headers_for_threading_and_a_stable_message_id(smtp_sink: Sink) -> None:
    p = make(smtp_sink)
    first = p.send(reply(html="<p>We are <b>on</b> it.</p>", attachments=(
        Attachment("log.txt", "text/plain", b"line 1\n"),
        Attachment("logo.png", "image/png", b"\x89PNG...", content_id="logo@desk", inline=True),
    )))
    again = p.send(reply())  # a retry of the same reply
    assert first.external_id == again.external_id == "omnidesk.3f1c9a7e5b2d4c6e8f0a1b2c3d4e5f60@desk.example"
    msg = smtp_sink.wait(2)[0].message
    assert msg["Message-ID"] == f"<{first.external_id}>"
    assert msg["From"] == f"Desk Support <{ADDRESS}>"
    assert msg["To"] == "ada@example.com"
    assert msg["Subject"] == "Re: Printer on fire [#42]"
    assert msg["In-Reply-To"] == "<CAH8yC8k@mail.gmail.com>"
    assert msg["References"] == "<root.1@example.com> <CAH8yC8k@mail.gmail.com>"
    assert msg["X-Omnidesk-Loop"] == "support"
    assert msg["Auto-Submitted"] is None
    assert msg.get_body(("plain",)).get_content().strip() == "We are on it."
    assert "<b>on</b>" in msg.get_body(("html",)).get_content()
    names = [(part.get_filename(), part.get("Content-ID")) for part in msg.iter_attachments()]
    assert ("log.txt", None) in names
    assert first.thread_key == "root.1@example.com"


def test_automatic_mail_is_marked_and_our_own_mail_is_a_loop(smtp_sink: Sink) -> None:
    p = make(smtp_sink)
    p.send(reply(automated=True, subject="Re: Your request [#42]"))
    captured = smtp_sink.wait(1)[0]
    msg = captured.message
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"] == "Re: Your request [#42]"  # the tag is not added twice
    assert p.parse(RawEvent(body=captured.content)) == [Ignored("loop", "X-Omnidesk-Loop: support")]


def test_permanent_refusal_carries_the_server_text(smtp_sink: Sink) -> None:
    smtp_sink.rcpt_answer = "550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown"
    with pytest.raises(PermanentSendError, match="User unknown"):
        make(smtp_sink).send(reply())


def test_temporary_refusal_is_retryable(smtp_sink: Sink) -> None:
    smtp_sink.answer = "451 4.3.0 Try again later"
    with pytest.raises(RetryableSendError, match="451"):
        make(smtp_sink).send(reply())


def test_unreachable_server_is_retryable() -> None:
    with pytest.raises(RetryableSendError, match="cannot connect"):
        make(None, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none", timeout_s=2.0).send(reply())


def test_no_smtp_server_configured_refuses_before_any_network() -> None:
    with pytest.raises(PermanentSendError, match="no smtp_host"):
        make(None).check_reply(reply())


def test_only_email_identities_can_be_mailed(smtp_sink: Sink) -> None:
    with pytest.raises(PermanentSendError, match="not an email address"):
        make(smtp_sink).send(reply(to=IdentityRef(IdentityKind.PHONE, "+441234567890")))



def test_smtp_reply_codes_map_to_typed_errors() -> None:
    from channels_plugins.email.client import _by_code
    from omnidesk.plugins.contract import AuthorizationRequired

    assert isinstance(_by_code(535, b"5.7.8 Authentication credentials invalid", "x"), AuthorizationRequired)
    assert isinstance(_by_code(552, b"5.3.4 Message too big", "x"), PermanentSendError)
    assert isinstance(_by_code(421, b"4.7.0 Try later", "x"), RetryableSendError)
