"""Applying a batch: what is read once for the batch, and that reading it once changes no outcome."""

from datetime import UTC

import pytest

from omnidesk.customers.models import Customer, Identity
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.routing.models import Rule
from omnidesk.tickets.models import Message, Ticket
from tests.conftest import api_body, statements_sent

pytestmark = pytest.mark.django_db


def _body(ext: str, who: int, *, thread: str | None = None, **extra) -> bytes:  # type: ignore[no-untyped-def]
    author = {"id": f"u-{who}", "name": f"Customer {who}", "email": f"c{who}@example.com"}
    return api_body(id=ext, thread=thread or f"t-{who}", author=author, **extra)


def _apply_counting() -> list[str]:
    """Apply one batch; the statements it sent (executemany, one round trip, is logged once)."""
    with statements_sent() as sql:
        assert inbound_events_apply(limit=10).applied == 10
    return [s[:120] for s in sql]


def test_ten_new_conversations_and_ten_follow_ups_take_few_statements(api_account, post_hook):
    for rule in Rule.objects.all():  # what rules do is theirs to count; this counts the ingest
        rule.active = False
        rule.save()  # (a save, not .update(): the rules cache notices saves)
    for i in range(10):
        post_hook("acme-api", _body(f"n-{i}", i))
    new = _apply_counting()
    for i in range(10):
        post_hook("acme-api", _body(f"f-{i}", i, text="Any news?"))
    follow = _apply_counting()

    # Measured: about 200 and 110 statements when every item read for itself; 110 and 60 with
    # the batch's reads done once (11 and 6 per event, savepoints included); 65 and 35 with one
    # savepoint per batch, a new ticket written once and the audit rows in one INSERT per batch.
    assert len(new) <= 70, "\n".join(new)
    assert len(follow) <= 40, "\n".join(follow)
    assert Ticket.objects.count() == Customer.objects.count() == 10
    assert Message.objects.count() == 20
    assert set(InboundEvent.objects.values_list("status", "attempts")) == {("processed", 1)}


def test_one_customer_twice_in_a_batch_is_one_customer_and_one_ticket(api_account, post_hook):
    post_hook("acme-api", _body("a-1", 1))
    post_hook("acme-api", _body("a-2", 1, text="And another thing."))
    assert inbound_events_apply().applied == 2
    assert Customer.objects.count() == 1
    assert Identity.objects.count() == 2  # the API id and the email address, once each
    ticket = Ticket.objects.get()
    assert sorted(ticket.messages.values_list("external_id", flat=True)) == ["a-1", "a-2"]


def test_same_external_id_twice_in_a_batch_is_one_message(api_account, post_hook):
    post_hook("acme-api", _body("dup", 1))
    post_hook("acme-api", _body("dup", 1, text="the same message, delivered with other bytes"))
    report = inbound_events_apply()
    assert report.applied == 2 and report.failed == 0
    assert Message.objects.count() == 1
    summaries = InboundEvent.objects.order_by("pk").values_list("summary", flat=True)
    assert [(s.get("messages", 0), s.get("duplicates", 0)) for s in summaries] == [(1, 0), (0, 1)]


def test_follow_ups_on_a_solved_ticket_in_one_batch_reopen_it_once(api_account, post_hook):
    post_hook("acme-api", _body("s-1", 1))
    inbound_events_apply()
    Ticket.objects.update(status=Ticket.Status.SOLVED)
    post_hook("acme-api", _body("s-2", 1, text="Still broken."))
    post_hook("acme-api", _body("s-3", 1, text="Hello?"))
    assert inbound_events_apply().applied == 2
    ticket = Ticket.objects.get()
    assert (ticket.status, ticket.reopen_count, ticket.messages.count()) == ("open", 1, 3)
    assert list(ticket.events.filter(action="reopened").values_list("message__external_id", flat=True)) == ["s-2"]


def test_a_bad_item_in_the_batch_leaves_the_others_applied_on_the_right_tickets(api_account, post_hook):
    post_hook("acme-api", _body("b-1", 1))
    post_hook("acme-api", api_body(id="b-2", thread="x", author={"id": "u-9", "name": "N", "phone": "not a number"},
                                   text="a garbled phone: the record is skipped, the event kept"))
    post_hook("acme-api", api_body(id="b-3", thread="x", author={"id": " ", "name": "Nobody"}, text="no usable id"))
    post_hook("acme-api", _body("b-4", 1, text="me again"))
    post_hook("acme-api", _body("b-5", 2))
    report = inbound_events_apply()
    assert (report.applied, report.failed) == (4, 1)
    failed = InboundEvent.objects.get(status="failed")
    assert b'"b-3"' in bytes(failed.body) and failed.error
    # b-3 rolled back its savepoint: b-4 and b-5 went item by item, and still landed right
    assert sorted(Message.objects.values_list("external_id", flat=True)) == ["b-1", "b-2", "b-4", "b-5"]
    by_ext = dict(Message.objects.values_list("external_id", "ticket_id"))
    assert by_ext["b-1"] == by_ext["b-4"]
    assert len({by_ext["b-1"], by_ext["b-2"], by_ext["b-5"]}) == 3
    assert any("ignored identity" in n for n in Message.objects.get(external_id="b-2").metadata["notes"])


def test_what_another_worker_committed_after_the_batch_read_is_a_race_never_a_second_customer(api_account):
    from datetime import datetime

    from django.db import IntegrityError, transaction

    from omnidesk.customers.services import customer_resolve
    from omnidesk.plugins.contract import RawEvent
    from omnidesk.plugins.services import account_plugin
    from omnidesk.tickets.ingest import IngestLookups, message_ingest

    [item] = account_plugin(api_account).parse(RawEvent(body=_body("r-1", 1)))
    known = IngestLookups([(api_account, item)])  # the batch reads: nobody knows customer 1 yet
    first, _, _ = customer_resolve(author=item.author)  # meanwhile another worker commits them

    with pytest.raises(IntegrityError), transaction.atomic():
        message_ingest(account=api_account, item=item, received_at=datetime.now(UTC), known=known)
    known.disable()  # what _apply_item does after a rollback; the retry reads for itself
    outcome = message_ingest(account=api_account, item=item, received_at=datetime.now(UTC), known=known)
    assert outcome.message is not None and outcome.message.ticket.customer_id == first.pk
    assert Customer.objects.count() == 1
