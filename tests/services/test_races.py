"""Racing deliveries and racing workers on PostgreSQL: nothing doubled, nothing failed by a race."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from channels_plugins.api.client import sign
from omnidesk.customers.models import Customer, Identity
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import ApplyReport, inbound_event_store, inbound_events_apply
from omnidesk.plugins.contract import RawEvent
from omnidesk.tickets.models import Message, Ticket, TicketThread
from tests.conftest import api_body

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def race(n: int, fn: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """Run fn(0..n-1) in n threads released together; re-raise the first error of any thread."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)
        finally:
            connections.close_all()  # each thread has its own connection; the test DB must be droppable

    threads = [threading.Thread(target=run, args=(i,), name=f"race-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    if errors:
        raise errors[0]
    return results


def drain(limit: int) -> Callable[[int], ApplyReport]:
    """A worker loop: claim `limit` events at a time until a claim comes back empty."""

    def work(_: int) -> ApplyReport:
        total = ApplyReport()
        while True:
            report = inbound_events_apply(limit=limit)
            if not (report.applied or report.failed or report.ignored):
                return total
            total.applied += report.applied
            total.failed += report.failed
            total.ignored += report.ignored

    return work


def test_twenty_simultaneous_deliveries_store_one_event(postgres, api_account):
    body = api_body(id="race-1", thread="race-thread")
    signature = sign("s3cret", body)

    def deliver(_: int) -> tuple[int, dict]:
        resp = Client().generic(
            "POST", "/hooks/acme-api/", body, content_type="application/json", HTTP_X_OMNIDESK_SIGNATURE=signature
        )
        return resp.status_code, resp.json()

    answers = race(20, deliver)

    assert [status for status, _ in answers] == [200] * 20, answers
    assert InboundEvent.objects.count() == 1
    event = InboundEvent.objects.get()
    assert {a["event"] for _, a in answers} == {event.pk}
    assert sorted(a["duplicate"] for _, a in answers) == [False] + [True] * 19
    inbound_events_apply()
    assert Message.objects.filter(external_id="race-1").count() == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 1)


@pytest.mark.parametrize("batch", [1, 3])
def test_twenty_different_events_with_one_external_id_make_one_of_everything(postgres, api_account, batch):
    # Different bodies (so different dedupe keys) carrying the same message of the same new customer.
    bodies = [
        json.dumps(
            {
                "id": "same-msg",
                "thread": "same-thread",
                "author": {"id": "new-u", "name": "Grace Hopper", "email": "Grace@Example.com", "phone": "+44 20 7946 0958"},
                "text": f"Where is my order? (delivery attempt {i})",
                "sent_at": "2026-11-02T09:15:00Z",
            }
        ).encode()
        for i in range(20)
    ]

    def deliver(i: int) -> int:
        resp = Client().generic(
            "POST", "/hooks/acme-api/", bodies[i], content_type="application/json",
            HTTP_X_OMNIDESK_SIGNATURE=sign("s3cret", bodies[i]),
        )
        return resp.status_code

    assert race(20, deliver) == [200] * 20
    assert InboundEvent.objects.filter(status="pending").count() == 20

    reports = race(4, drain(batch))

    assert sum(r.applied for r in reports) == 20
    assert sum(r.failed for r in reports) == 0
    failed = list(InboundEvent.objects.exclude(status="processed").values_list("status", "error"))
    assert failed == []
    assert Message.objects.count() == 1
    assert Ticket.objects.count() == 1
    assert Customer.objects.count() == 1
    assert TicketThread.objects.count() == 1
    values = sorted(Identity.objects.values_list("kind", "value"))
    assert values == [("email", "grace@example.com"), ("external", "new-u"), ("phone", "+442079460958")]
    summaries = [e.summary for e in InboundEvent.objects.all()]
    assert sum(s.get("messages", 0) for s in summaries) == 1
    assert sum(s.get("duplicates", 0) for s in summaries) == 19
    assert set(InboundEvent.objects.values_list("attempts", flat=True)) == {1}


def test_two_workers_applying_the_same_event_make_one_message(postgres, api_account):
    events = []
    for i in range(15):
        raw = RawEvent(body=api_body(id=f"dup-{i}", thread=f"dup-t{i}", author={"id": f"dup-u{i}", "name": "Alan"}))
        event, _ = inbound_event_store(account=api_account, raw=raw)
        # Two workers got the same nudge (a redelivery, or the sweep and the original send).
        reports = race(2, lambda _i, pk=event.pk: inbound_events_apply(event_ids=[pk]))
        assert sum(r.applied for r in reports) == 1, f"event {event.pk} applied {sum(r.applied for r in reports)} times"
        events.append(event)

    for event in events:
        event.refresh_from_db()
        assert (event.status, event.attempts, event.error) == ("processed", 1, "")
    assert Message.objects.count() == 15
    assert sorted(Message.objects.values_list("external_id", flat=True)) == sorted(f"dup-{i}" for i in range(15))


def test_workers_deadlocking_on_each_others_new_customers_defer_and_lose_nothing(postgres, api_account, monkeypatch):
    # Worker 1 holds customer X's first message and then meets customer Y; worker 2 the reverse.
    import omnidesk.inbox.services as services

    def body(ext: str, who: str) -> bytes:
        return api_body(id=ext, thread=f"{who}-thread", author={"id": who, "name": who.upper(), "email": f"{who}@example.com"})

    ids = {}
    for ext, who in (("x-1", "x"), ("y-1", "y"), ("y-2", "y"), ("x-2", "x")):
        ids[ext] = inbound_event_store(account=api_account, raw=RawEvent(body=body(ext, who)))[0].pk

    both_first_items_done = threading.Barrier(2)
    real_ingest = services.message_ingest
    calls = threading.local()

    def ingest_then_meet(**kwargs):  # type: ignore[no-untyped-def]
        outcome = real_ingest(**kwargs)
        if not getattr(calls, "seen", False):
            calls.seen = True
            both_first_items_done.wait(timeout=10)
        return outcome

    monkeypatch.setattr(services, "message_ingest", ingest_then_meet)
    batches = [[ids["x-1"], ids["y-2"]], [ids["y-1"], ids["x-2"]]]
    reports = race(2, lambda i: inbound_events_apply(event_ids=batches[i], limit=2))

    assert sum(r.failed for r in reports) == 0, list(InboundEvent.objects.values_list("status", "error"))
    # Each batch writes its new rows together (rows.rows_deferred), so which way it ends depends on the
    # timing: both write and wait on each other (PostgreSQL breaks the deadlock by cancelling one side's
    # statement, whose item is left pending), or one commits first and the other's held row meets it
    # (that batch is applied again around the item, at once). Either way nothing fails or is lost.
    deferred = [pk for r in reports for pk in r.deferred]
    assert len(deferred) <= 1, deferred
    assert all(InboundEvent.objects.get(pk=pk).status == "pending" for pk in deferred)
    monkeypatch.setattr(services, "message_ingest", real_ingest)
    assert inbound_events_apply().applied == len(deferred)
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Message.objects.count() == 4
    assert Customer.objects.count() == 2
    assert Ticket.objects.count() == 2
