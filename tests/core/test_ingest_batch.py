"""A batch applied under one savepoint, a new ticket written once, audit rows and a fetch stored
in one INSERT each: fewer statements, the same rows as the item-by-item path writes."""

from datetime import UTC, datetime, timedelta

import pytest

from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_events_apply, inbound_events_store
from omnidesk.plugins.contract import RawEvent
from omnidesk.rows import select_with
from omnidesk.sla.models import Calendar, Policy
from omnidesk.tickets.models import Message, Ticket, TicketEvent
from tests.conftest import api_body, statements_sent

pytestmark = pytest.mark.django_db


def _body(ext: str, who: int, **extra) -> bytes:  # type: ignore[no-untyped-def]
    author = {"id": f"u-{who}", "name": f"Customer {who}", "email": f"c{who}@example.com"}
    return api_body(id=ext, thread=f"t-{who}", author=author, **extra)


def test_a_batch_where_nothing_fails_takes_one_savepoint_and_writes_each_new_ticket_once(api_account, post_hook, no_rules):
    for i in range(5):
        post_hook("acme-api", _body(f"n-{i}", i))
    with statements_sent() as sql:
        assert inbound_events_apply(limit=10).applied == 5
    # the apply's transaction (a savepoint inside the test's), the batch's reads, the batch: none per item
    assert sum(s.startswith("SAVEPOINT") for s in sql) == 3
    assert not [s for s in sql if s.startswith('UPDATE "tickets_ticket"')]
    assert sum('INSERT INTO "tickets_ticketevent"' in s for s in sql) == 1
    for ticket in Ticket.objects.all():
        # what the SLA UPDATE used to write is in the row from the start
        assert ticket.sla_policy is not None and ticket.first_response_due_at is not None
        assert ticket.awaiting_response_since == ticket.customer_first_message_at
        assert ticket.ingest_lag_samples and ticket.sla_due_at is not None
        assert list(ticket.events.values_list("action", flat=True))[:2] == ["created", "message_added"]


def test_a_new_tickets_sla_sees_its_first_messages_visibility_and_announces_what_is_overdue(api_account, post_hook):
    Policy.objects.create(name="Public", position=0, conditions={"visibility": ["public"]},
                          targets={"normal": {"first_response": 60}})
    post_hook("acme-api", _body("p-1", 1, public=True))  # sent three weeks ago (api_body)
    post_hook("acme-api", _body("q-1", 2))
    assert inbound_events_apply().applied == 2
    public = Message.objects.get(external_id="p-1").ticket
    private = Message.objects.get(external_id="q-1").ticket
    assert public.sla_policy.name == "Public" and "visibility public" in public.sla_reason
    assert private.sla_policy.name != "Public"
    assert public.first_message_public and not private.first_message_public
    # three weeks late: the warning and the breach are announced with the ticket, once, after its arrival rows
    actions = list(public.events.values_list("action", flat=True))
    assert actions[:2] == ["created", "message_added"]
    assert sorted(a for a in actions if a.startswith("sla_")) == ["sla_breach", "sla_warning"]  # first response only
    times = list(public.events.values_list("at", flat=True))
    assert times == sorted(times)


def test_a_failing_event_sends_the_batch_item_by_item_and_only_it_fails(api_account, post_hook):
    post_hook("acme-api", _body("g-1", 1))
    post_hook("acme-api", api_body(id="g-2", thread="x", author={"id": " ", "name": "Nobody"}, text="no usable id"))
    post_hook("acme-api", _body("g-3", 1, text="again"))
    with statements_sent() as sql:
        report = inbound_events_apply()
    assert (report.applied, report.failed) == (2, 1)
    assert any(s.startswith("ROLLBACK TO SAVEPOINT") for s in sql)
    assert sorted(Message.objects.values_list("external_id", flat=True)) == ["g-1", "g-3"]
    assert Ticket.objects.count() == 1  # g-3 found g-1's ticket on the per-item path
    ticket = Ticket.objects.get()
    assert list(ticket.events.values_list("action", flat=True)).count("message_added") == 2
    events = {e.dedupe_key: e for e in InboundEvent.objects.all()}
    assert {e.attempts for e in events.values()} == {1}  # the rolled-back pass is not counted


def test_a_failing_event_takes_only_itself_down_the_per_item_path(api_account, post_hook, no_rules):
    for i in range(4):
        post_hook("acme-api", _body(f"s-{i}", i))
    post_hook("acme-api", api_body(id="s-bad", thread="x", author={"id": " ", "name": "Nobody"}, text="no usable id"))
    for i in range(4, 8):
        post_hook("acme-api", _body(f"s-{i}", i if i < 7 else 0, text="later"))  # s-7 follows s-0 up
    with statements_sent() as sql:
        report = inbound_events_apply(limit=10)
    assert (report.applied, report.failed) == (8, 1)
    # the apply's, the batch's reads and the batch rolled back; then the four before and the four
    # after it each read and applied together, and the bad one alone: 8, not 3 + one per item (12)
    assert sum(s.startswith("SAVEPOINT") for s in sql) == 8
    assert sum(s.startswith("ROLLBACK TO SAVEPOINT") for s in sql) == 2  # the batch, then the bad item
    by_ext = dict(Message.objects.values_list("external_id", "ticket_id"))
    assert sorted(by_ext) == sorted(f"s-{i}" for i in range(8))
    assert by_ext["s-7"] == by_ext["s-0"] and len(set(by_ext.values())) == 7
    assert b'"s-bad"' in bytes(InboundEvent.objects.get(status="failed").body)
    events = InboundEvent.objects.all()
    assert {e.attempts for e in events} == {1} and {e.status for e in events} == {"processed", "failed"}
    assert TicketEvent.objects.filter(action="message_added").count() == 8  # nothing rolled back is left, nothing twice


def test_the_claim_takes_the_named_events_first_then_the_oldest_others(api_account, post_hook):
    for i in range(4):
        post_hook("acme-api", _body(f"c-{i}", i))
    ids = list(InboundEvent.objects.order_by("pk").values_list("pk", flat=True))
    inbound_events_apply(event_ids=[ids[3]], limit=2)
    assert set(InboundEvent.objects.filter(status="processed").values_list("pk", flat=True)) == {ids[3], ids[0]}
    inbound_events_apply(event_ids=[ids[2], ids[3]], limit=1)
    assert InboundEvent.objects.get(pk=ids[2]).status == "processed"
    assert InboundEvent.objects.get(pk=ids[1]).status == "pending"


def test_rows_update_stamps_auto_now_and_refuses_a_row_that_is_gone(api_account, post_hook):
    from django.db import DatabaseError

    from omnidesk.rows import rows_update

    post_hook("acme-api", _body("u-1", 1))
    inbound_events_apply()
    ticket = Message.objects.get().ticket
    stamped = ticket.updated_at
    ticket.subject, ticket.tags = "changed", ["vip", "ünïcode"]
    with statements_sent() as sql:
        rows_update([ticket], ["subject", "tags", "updated_at"])
    assert len(sql) == 1
    fresh = Ticket.objects.get(pk=ticket.pk)
    assert (fresh.subject, fresh.tags) == ("changed", ["vip", "ünïcode"])
    assert fresh.updated_at == ticket.updated_at > stamped
    Ticket.objects.filter(pk=ticket.pk).delete()
    with pytest.raises(DatabaseError):
        rows_update([ticket], ["subject"])


def test_a_fetch_is_stored_in_one_insert_and_redeliveries_are_skipped(api_account):
    raws = [RawEvent(body=_body(f"f-{i}", i), source_key=f"k-{i}") for i in range(3)]
    first = inbound_events_store(account=api_account, raws=raws[:2])
    assert len(first) == 2
    with statements_sent() as sql:
        again = inbound_events_store(account=api_account, raws=[*raws, raws[2]])  # two old, one new twice
    assert len(sql) == 1
    assert len(again) == 1 and again[0] not in first
    assert InboundEvent.objects.count() == 3
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"pending"}


def test_rows_keep_values_json_carries_exactly(api_account, post_hook, no_rules):
    sent = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=123456)
    post_hook("acme-api", _body("j-1", 1, sent_at=sent.isoformat(), text="Ünïcode \"quotes\" and \\ backslashes"))
    inbound_events_apply()
    message = Message.objects.get()
    assert message.sent_at == sent and message.text == "Ünïcode \"quotes\" and \\ backslashes"
    ticket = message.ticket
    assert ticket.customer_first_message_at == sent and ticket.resolution_running_since == sent
    assert ticket.ingest_lag_samples == [pytest.approx((message.received_at - sent).total_seconds())]
    assert TicketEvent.objects.filter(ticket=ticket, action="created").get().new == "new"


def test_select_with_reads_what_select_related_reads_in_one_statement_built_once(django_assert_num_queries):
    # the batch's reads (policies, identities, threads) go through it on PostgreSQL
    calendar = Calendar.objects.create(name="Office", hours={"mon": [["09:00", "17:00"]]}, closed_dates=["2026-12-24"])
    Policy.objects.create(name="Later", position=5, calendar=calendar, targets={"normal": {"first_response": 60}})
    Policy.objects.create(name="Sooner", position=5, targets={"high": {"resolution": 30}})
    Policy.objects.create(name="Off", position=0, active=False)
    expected = list(Policy.objects.filter(active=True).select_related("calendar"))
    with django_assert_num_queries(1):  # the calendars came along: reading them asks nothing more
        got = select_with(Policy, ("calendar",), 'm."active" ORDER BY m."position", m."id"', [])
        shown = [(p.pk, p.name, p.targets, p.calendar and (p.calendar.pk, p.calendar.hours, p.calendar.closed_dates))
                 for p in got]
    assert shown == [(p.pk, p.name, p.targets, p.calendar and (p.calendar.pk, p.calendar.hours, p.calendar.closed_dates))
                     for p in expected]
    assert any(p.calendar is None for p in got) and all(not p._state.adding for p in got)
