"""Transfers are counted on the ticket as the audit trail records them, by every writer of those events."""

from __future__ import annotations

import pytest

from omnidesk.reports.metrics import figures_compute
from omnidesk.reports.selectors import report_tickets
from omnidesk.routing.models import Rule
from omnidesk.routing.services import rule_save
from omnidesk.tickets.models import Ticket, TicketEvent
from omnidesk.tickets.services import ticket_update
from tests.routing.conftest import ingest

from .builders import Spec, build
from .test_report import SCOPE

pytestmark = pytest.mark.django_db


def transfers(ticket: Ticket) -> tuple[int, int]:
    """(the count on the ticket, the transfer events in its audit trail)"""
    events = TicketEvent.objects.filter(ticket=ticket)
    return Ticket.objects.get(pk=ticket.pk).transfer_count, sum(e.is_transfer for e in events)


def test_an_agent_moving_a_ticket_counts_and_a_first_assignment_does_not(manager, agent, support, billing):
    ticket = build(Spec("email", support))
    ticket_update(ticket=ticket, user=manager, assignee=agent)  # the first assignment
    assert transfers(ticket) == (0, 0)
    ticket_update(ticket=ticket, user=manager, assignee=manager)
    moved = ticket_update(ticket=ticket, user=manager, group=billing, status="pending")
    assert transfers(ticket) == (2, 2)
    moved.save()  # a later save of the whole row keeps the count
    assert transfers(ticket) == (2, 2)
    ticket_update(ticket=ticket, user=manager, assignee=None, group=None)  # unassigning moves it to no one
    assert transfers(ticket) == (2, 2)
    assert [t.pk for t in report_tickets(scope=SCOPE, metric="transferred")] == [ticket.pk]
    for portable in (True, False):
        assert figures_compute(scope=SCOPE, portable=portable)["email"].transfers == 2


def test_a_rule_moving_a_ticket_to_another_group_counts(api_account, support, billing):
    ticket, _ = ingest(api_account, "m-1", thread="t")
    Ticket.objects.filter(pk=ticket.pk).update(group=support)
    Rule.objects.all().delete()
    rule_save(name="to billing", events=["customer_message"], actions=[{"type": "set_group", "value": "Billing"}])
    ticket, _ = ingest(api_account, "m-2", thread="t", text="Still waiting")
    assert ticket.group_id == billing.pk
    assert transfers(ticket) == (1, 1)
