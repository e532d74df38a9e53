"""The attacker (sam, an agent of Support) and the victim (group Billing's ticket, customer, file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.base import ContentFile

from omnidesk.customers.models import Customer
from omnidesk.tickets.models import Attachment, Ticket
from tests.api.conftest import (  # noqa: F401  (pytest fixtures)
    agent, billing, billing_account, deliver, fast_passwords, manager, outsider, sending_account, support,
)


@dataclass
class Victim:
    ticket: Ticket
    customer: Customer
    attachment: Attachment

    def snapshot(self) -> dict[str, Any]:
        """What an attack must not change."""
        t = Ticket.objects.get(pk=self.ticket.pk)
        return {
            "ticket": (t.status, t.priority, t.group_id, t.assignee_id, t.customer_id),
            "messages": list(t.messages.order_by("pk").values_list("pk", "kind", "direction")),
            "events": t.events.count(),
            "customer": Customer.objects.filter(pk=self.customer.pk).values_list("merged_into", flat=True).first(),
        }


@pytest.fixture
def victim(billing_account, deliver) -> Victim:  # type: ignore[no-untyped-def]
    """A Billing ticket with an attachment; its customer writes only to Billing."""
    ticket = deliver("billing-api", id="b-1", thread="tb-1", text="VICTIM-TEXT my card was charged twice",
                     author={"id": "victim-1", "name": "Vic Tim", "email": "vic@example.com"})
    att = Attachment.objects.create(
        message=ticket.messages.first(), filename="statement.pdf", content_type="application/pdf", size=9,
        sha256="ef" * 32, file=ContentFile(b"%PDF-1.4\n", name="statement.pdf"),
    )
    return Victim(ticket=ticket, customer=ticket.customer, attachment=att)


@pytest.fixture
def own(sending_account, deliver) -> Ticket:  # type: ignore[no-untyped-def]
    """The attacker's own Support ticket (a customer of their own)."""
    return deliver("acme-api", id="a-1", thread="ta-1", text="OWN-TEXT where is my parcel",
                   author={"id": "own-1", "name": "Olive Own"})
