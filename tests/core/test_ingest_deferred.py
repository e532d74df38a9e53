"""The new rows of an apply batch written one INSERT per model (rows.rows_deferred): every statement
still sees the rows held before it, and a held row that meets another worker's commit sends only its
own item down the per-item path."""

import pytest
from django.db import IntegrityError, transaction

from omnidesk.customers.models import Customer, Identity
from omnidesk.customers.services import customer_resolve
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import _apply_batch, _batch_lookups, _claim, _parse
from omnidesk.rows import (
    RowsConflict,
    RowsGone,
    rows_deferred,
    rows_insert,
    rows_update,
)
from omnidesk.tickets.models import Message, Ticket, TicketThread
from tests.conftest import statements_sent
from tests.core.test_ingest_batch import _body

pytestmark = pytest.mark.django_db


def _inserts(sql: list[str], table: str) -> int:
    return sum(s.startswith(f'INSERT INTO "{table}"') for s in sql)


def test_a_batch_of_new_conversations_writes_each_table_once(api_account, post_hook, no_rules):
    from omnidesk.inbox.services import inbound_events_apply

    for i in range(6):
        post_hook("acme-api", _body(f"n-{i}", i))
    with statements_sent() as sql:
        assert inbound_events_apply(limit=10).applied == 6
    for table in ("customers_customer", "customers_identity", "tickets_ticket", "tickets_ticketthread",
                  "tickets_message", "tickets_ticketevent"):
        assert _inserts(sql, table) == 1, table
    assert Customer.objects.count() == Ticket.objects.count() == TicketThread.objects.count() == 6
    for message in Message.objects.select_related("ticket__customer", "author_identity"):
        ticket = message.ticket
        assert message.author_identity.customer_id == ticket.customer_id
        assert TicketThread.objects.get(ticket=ticket).key == f"{ticket.customer_id}:t-{message.external_id[2:]}"
        assert list(ticket.events.values_list("action", flat=True))[:2] == ["created", "message_added"]
        assert ticket.customer_first_message_at == message.sent_at


def test_follow_ups_in_the_batch_see_the_tickets_it_created(api_account, post_hook, no_rules):
    from omnidesk.inbox.services import inbound_events_apply

    for i in range(3):
        post_hook("acme-api", _body(f"a-{i}", i))
        post_hook("acme-api", _body(f"b-{i}", i, text="Any news?"))
    assert inbound_events_apply(limit=10).applied == 6
    assert Ticket.objects.count() == Customer.objects.count() == 3
    for ticket in Ticket.objects.all():
        assert ticket.messages.count() == 2


def test_held_rows_are_written_before_any_other_statement_and_ids_come_from_the_sequence():
    with transaction.atomic(), rows_deferred({Customer: 2}) as deferred:
        assert deferred is not None
        first, second = Customer(display_name="A"), Customer(display_name="B")
        with statements_sent() as sql:
            rows_insert([first])
            rows_insert([second])
        assert sql == [] and first.pk and second.pk == first.pk + 1  # held, with ids reserved before
        assert set(Customer.objects.values_list("pk", flat=True)) == {first.pk, second.pk}  # written first
        third = Customer(display_name="C")
        rows_insert([third])  # none reserved left: written at once
        assert Customer.objects.filter(pk=third.pk).exists()
    assert Customer.objects.count() == 3


def test_a_held_row_that_conflicts_raises_at_every_later_statement_naming_its_owner():
    taken = Customer.objects.create(display_name="Taken")
    Identity.objects.create(customer=taken, kind="email", namespace="", value="x@example.com")
    with pytest.raises(RowsConflict) as raised, transaction.atomic(), rows_deferred({Identity: 1}) as deferred:
        deferred.owner = 42
        rows_insert([Identity(customer=taken, kind="email", namespace="", value="x@example.com")])
        with pytest.raises(IntegrityError):  # someone catches it ...
            Customer.objects.count()
        Customer.objects.count()  # ... and it comes back
    assert raised.value.owner == 42
    assert Identity.objects.count() == 1


def test_held_updates_keep_their_order_and_a_row_gone_is_refused():
    kept, gone = Customer.objects.create(display_name="A"), Customer.objects.create(display_name="B")
    with transaction.atomic(), rows_deferred({Customer: 1}) as deferred:
        deferred.owner = 7
        with statements_sent() as sql:
            kept.display_name = "first"
            rows_update([kept], ["display_name"])
            kept.display_name = "second"  # the same row again: the first UPDATE is written before it is held
            rows_update([kept], ["display_name"])
        assert len(sql) == 1
        assert Customer.objects.get(pk=kept.pk).display_name == "second"
    Customer.objects.filter(pk=gone.pk).delete()
    with pytest.raises(RowsGone) as raised, transaction.atomic(), rows_deferred({Customer: 1}) as deferred:
        deferred.owner = 8
        rows_update([gone], ["display_name"])
    assert raised.value.owner == 8


def test_a_held_row_meeting_another_workers_commit_sends_only_its_item_alone(api_account, post_hook, no_rules):
    for i in range(3):
        post_hook("acme-api", _body(f"d-{i}", i))
    with transaction.atomic():
        parsed = [(event, api_account, _parse(event, api_account)) for event in _claim([], 10)]
        known = _batch_lookups(parsed)  # the batch reads: nobody knows customer 1 yet
        other, _, _ = customer_resolve(author=parsed[1][2][0].author)  # meanwhile another worker commits them
        with statements_sent() as sql:
            report, _ = _apply_batch(parsed, known)
    assert (report.applied, report.failed) == (3, 0)
    assert sum(s.startswith("ROLLBACK TO SAVEPOINT") for s in sql) == 1  # not the whole batch item by item
    assert Customer.objects.count() == 3
    assert Message.objects.get(external_id="d-1").ticket.customer_id == other.pk
    assert Identity.objects.filter(customer=other).count() == 2 and Identity.objects.count() == 6  # id + email each
    # a rolled-back attempt is not counted: each event was applied once
    assert {(event.status, event.attempts) for event, _, _ in parsed} == {(InboundEvent.Status.PROCESSED, 1)}
