"""Real peers for the email tests: a private Dovecot (session) and an aiosmtpd sink (per test)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import need
from tests.services.procs import free_port

from .dovecot import PASSWORD, Dovecot, missing

ADDRESS = "support@desk.example"


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    need(missing())
    server = Dovecot.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> str:
    """A fresh, empty mailbox (Dovecot creates it at first login)."""
    return dovecot.new_user("support")


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Sink:
    """What the SMTP sink received, and how it answers (set `answer`, `rcpt_answer`, `auth_ok`)."""

    host: str
    port: int
    received: list[Captured] = field(default_factory=list)
    answer: str = "250 2.0.0 Ok: queued"
    rcpt_answer: str = ""

    def wait(self, count: int = 1, timeout: float = 5.0) -> list[Captured]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received


class _Handler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if self.sink.rcpt_answer:
            return self.sink.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.answer.startswith("250"):
            self.sink.received.append(Captured(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return self.sink.answer


@pytest.fixture
def smtp_sink() -> Iterator[Sink]:
    sink = Sink("127.0.0.1", free_port())
    controller = Controller(_Handler(sink), hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def email_config(dovecot: Dovecot | None, user: str, sink: Sink | None = None, **overrides: Any) -> dict[str, Any]:
    """Settings of an email account reading `user`'s mailbox and sending through `sink`."""
    config: dict[str, Any] = {"address": ADDRESS, "display_name": "Desk Support", "idle_timeout_s": 20.0}
    if dovecot is not None:
        config.update(imap_host=dovecot.host, imap_port=dovecot.port, imap_security="none", username=user)
    if sink is not None:
        config.update(smtp_host=sink.host, smtp_port=sink.port, smtp_security="none", smtp_username="")
    config.update(overrides)
    return config


SECRETS = {"password": PASSWORD}
