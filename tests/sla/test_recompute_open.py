"""Recomputing every open ticket at once (a policy changed) gives what recomputing each one gives."""

from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from omnidesk.plugins.contract import Author, IdentityKind, IdentityRef, InboundMessage
from omnidesk.routing.models import Group
from omnidesk.sla.models import Calendar, Policy
from omnidesk.sla.recompute import open_tickets_recompute
from omnidesk.sla.services import _SLA_FIELDS, sla_recompute, sla_recompute_open
from omnidesk.tickets.ingest import message_ingest
from omnidesk.tickets.models import Ticket, TicketEvent

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 15, 7, tzinfo=timezone.utc)  # a Wednesday afternoon
H = timedelta(hours=1)
FIELDS = [Ticket._meta.get_field(name).attname for name in _SLA_FIELDS]


def write(account, n, sent_at, *, public=False):
    item = InboundMessage(
        external_id=f"m{n}", event_type="message", thread_key=f"t{n}", text="help",
        author=Author(IdentityRef(IdentityKind.EXTERNAL, f"u{n}", account.slug)), sent_at=sent_at,
        visibility="public" if public else "private",
    )
    return message_ingest(account=account, item=item, received_at=sent_at).message.ticket


def state(ticket_ids):
    tickets = Ticket.objects.filter(pk__in=ticket_ids).order_by("pk")
    events = list(TicketEvent.objects.filter(ticket_id__in=ticket_ids, action__startswith="sla_")
                  .order_by("ticket_id", "action", "field").values_list("ticket_id", "action", "field", "new"))
    return [[getattr(t, f) for f in FIELDS] for t in tickets], events


@pytest.fixture
def varied(api_account):
    """Open, paused, answered, solved and rule-chosen tickets, then policies that ask every kind of fact."""
    tickets = [write(api_account, n, NOW - (n * 7 + 1) * H, public=n % 2 == 0) for n in range(10)]
    Ticket.objects.filter(pk=tickets[1].pk).update(priority="urgent")
    Ticket.objects.filter(pk=tickets[2].pk).update(priority="urgent", tags=["vip"])
    Ticket.objects.filter(pk=tickets[3].pk).update(status="pending", resolution_running_since=None, resolution_used_s=3600)
    Ticket.objects.filter(pk=tickets[4].pk).update(first_response_at=NOW - 20 * H, awaiting_response_since=NOW - 2 * H)
    Ticket.objects.filter(pk=tickets[5].pk).update(status="solved")
    Ticket.objects.filter(pk=tickets[6].pk).update(status="on_hold")
    tickets[7].customer.tags = ["vip"]
    tickets[7].customer.save()
    berlin = Calendar.objects.create(name="Berlin", timezone="Europe/Berlin", holiday_country="DE",
                                     hours={"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "wed": [["08:00", "20:00"]]})
    every = {"first_response": 30, "next_response": 60, "resolution": 600}
    Policy.objects.create(name="Public urgent", position=1, calendar=berlin,
                          conditions={"visibility": ["public"], "priority": ["urgent"]}, targets={"urgent": every})
    vip = Policy.objects.create(name="VIP", position=2, conditions={"customer_tags": ["vip"]}, calendar=berlin,
                                targets={"normal": every, "urgent": every}, warn_at_percent=50)
    support = Group.objects.get(name="Support")
    Policy.objects.create(name="Widget support", position=3, conditions={"channels": ["api"], "groups": [support.pk]},
                          targets={"normal": {"first_response": 600, "resolution": 6000}})
    gone = Policy.objects.create(name="Retired", position=4, active=False, targets={"normal": every})
    Ticket.objects.filter(pk=tickets[8].pk).update(sla_policy_override=vip)
    Ticket.objects.filter(pk=tickets[9].pk).update(sla_policy_override=gone, group=None)
    return [t.pk for t in tickets]


def test_the_bulk_recompute_matches_recomputing_each_ticket(varied):
    open_ids = list(Ticket.objects.filter(pk__in=varied).exclude(status__in=["solved", "closed"]).values_list("pk", flat=True))
    # both ways start from the same state: the ingest announced on the real clock what was already
    # due then (NOW is fixed), and those events would otherwise be in one result only
    TicketEvent.objects.filter(ticket_id__in=varied, action__startswith="sla_").delete()
    before = state(varied)
    for ticket in Ticket.objects.filter(pk__in=open_ids):
        sla_recompute(ticket=ticket, now=NOW)
    one_by_one = state(varied)
    # back to where it was, then all at once, in batches smaller than the set
    for row, pk in zip(before[0], sorted(varied), strict=True):
        Ticket.objects.filter(pk=pk).update(**dict(zip(FIELDS, row, strict=True)))
    TicketEvent.objects.filter(ticket_id__in=varied, action__startswith="sla_").delete()
    assert open_tickets_recompute(batch=3, now=NOW) == len(open_ids) == 9
    assert state(varied) == one_by_one
    chosen = dict(Ticket.objects.filter(pk__in=varied).values_list("pk", "sla_policy__name"))
    assert [chosen[varied[n]] for n in (0, 1, 2, 7, 8, 9)] == [
        "Widget support", "Widget support", "Public urgent", "VIP", "VIP", "Standard",  # 8: a rule's; 9: retired
    ]
    assert one_by_one[1], "some warnings and breaches were announced"


def test_the_bulk_recompute_costs_the_same_queries_for_3_or_30_tickets(api_account):
    def queries(n):
        for i in range(n):
            write(api_account, 1000 + n * 100 + i, NOW - H)
        with CaptureQueriesContext(connection) as captured:
            sla_recompute_open(batch=100)
        Ticket.objects.all().delete()
        return len(captured)

    assert queries(3) == queries(30) <= 8


def test_tickets_whose_deadlines_did_not_change_are_not_written_again(api_account):
    for i in range(4):
        write(api_account, 2000 + i, NOW - H)
    sla_recompute_open()
    with CaptureQueriesContext(connection) as captured:
        assert sla_recompute_open() == 4
    assert not [q for q in captured if 'UPDATE "tickets_ticket"' in q["sql"]]
    Policy.objects.filter(name="Standard").update(targets={"normal": {"first_response": 5}})
    with CaptureQueriesContext(connection) as captured:
        sla_recompute_open()
    assert len([q for q in captured if 'UPDATE "tickets_ticket"' in q["sql"]]) == 1  # one statement per batch
    assert set(Ticket.objects.values_list("resolution_due_at", flat=True)) == {None}
