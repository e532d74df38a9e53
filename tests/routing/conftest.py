"""Routing tests reuse the API tests' people and accounts; messages go through the real ingest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from django.db import transaction

from omnidesk.plugins.contract import Author, CallDetails, IdentityKind, IdentityRef, InboundMessage
from omnidesk.routing.models import Rule
from omnidesk.routing.services import rule_save
from omnidesk.tickets.ingest import message_ingest
from omnidesk.tickets.models import Message, Ticket
from tests.api.conftest import (  # noqa: F401 - fixtures
    agent, billing, billing_account, client_for, deliver, fast_passwords, manager, outsider, sending_account, support,
)

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def ingest(
    account: Any, external_id: str, *, text: str = "My parcel never arrived.", author: str = "u-1",
    email: str | None = "ada@example.com", followers: int | None = None, verified: bool | None = None,
    public: bool = False, automated: bool = False, sent_at: datetime | None = None, thread: str | None = None,
    metadata: tuple[tuple[str, str], ...] = (), call: CallDetails | None = None,
) -> tuple[Ticket, Message]:
    """One message through the core ingest (the service every channel's apply step calls)."""
    item = InboundMessage(
        external_id=external_id, event_type="message", thread_key=thread or external_id,
        author=Author(
            identity=IdentityRef(IdentityKind.EXTERNAL, author, account.slug), display_name="Ada",
            followers=followers, verified=verified,
            also=(IdentityRef(IdentityKind.EMAIL, email),) if email else (),
        ),
        text=text, visibility="public" if public else "private", automated=automated,
        sent_at=sent_at or NOW - timedelta(minutes=30), metadata=metadata, call=call,
    )
    with transaction.atomic():
        outcome = message_ingest(account=account, item=item, received_at=datetime.now(timezone.utc))
    assert outcome.message is not None
    return Ticket.objects.get(pk=outcome.message.ticket_id), outcome.message


@pytest.fixture
def only_rules(db):  # type: ignore[no-untyped-def]
    """Replace the shipped rules with the ones a test makes."""
    Rule.objects.all().delete()

    def make(**fields: Any) -> Rule:
        fields.setdefault("events", ["ticket_created", "customer_message"])
        return rule_save(**fields)

    return make
