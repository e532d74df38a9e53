"""Real dramatiq worker processes on a real broker (Redis and RabbitMQ), including a kill -9."""

from __future__ import annotations

import pytest
from django.db.models import Count

from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_event_store
from omnidesk.plugins.contract import RawEvent
from omnidesk.tickets.models import Message
from tests.conftest import api_body

from .procs import nudge, real_broker, start_worker, subprocess_database_url, sweep, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True), pytest.mark.timeout(150)]

WORKER_START_S = 30  # a cold start imports Django and every app; generous for a loaded CI box


def store(account, first: int, count: int, *, tag: str) -> list[int]:  # type: ignore[no-untyped-def]
    """Events as the webhook stores them: new threads, with every third one a follow-up."""
    ids = []
    for i in range(first, first + count):
        thread = f"{tag}-t{i - i % 3}"
        body = api_body(id=f"{tag}-{i}", thread=thread, author={"id": f"{tag}-u{i - i % 3}", "name": "Customer"})
        event, created = inbound_event_store(account=account, raw=RawEvent(body=body))
        assert created
        ids.append(event.pk)
    return ids


def counts() -> dict[str, int]:
    return dict(InboundEvent.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))


def assert_applied_exactly_once(expected_events: int) -> None:
    assert counts() == {"processed": expected_events}, InboundEvent.objects.exclude(status="processed").values(
        "pk", "status", "error"
    )[:5]
    assert set(InboundEvent.objects.values_list("attempts", flat=True)) == {1}
    assert Message.objects.count() == expected_events
    assert not Message.objects.values("external_id").annotate(n=Count("pk")).filter(n__gt=1).exists()


def test_worker_processes_apply_what_the_broker_delivers(postgres, api_account, worker_broker_url):
    broker = real_broker(worker_broker_url)
    worker = None
    try:
        ids = store(api_account, 0, 60, tag="w")
        for pk in ids:
            nudge(broker, [pk])
        worker = start_worker(database_url=subprocess_database_url(), broker_url=worker_broker_url)
        wait_until(
            lambda: counts().get("processed", 0) == 60 or not worker.alive,
            timeout=WORKER_START_S + 30,
            what="60 events applied by the worker",
        )
        assert worker.alive, worker.output()
        assert_applied_exactly_once(60)
    finally:
        if worker is not None:
            worker.stop()
        broker.close()


def test_killed_worker_leaves_nothing_unapplied_after_the_sweep(postgres, api_account, worker_broker_url):
    broker = real_broker(worker_broker_url)
    first = second = None
    try:
        nudged = store(api_account, 0, 400, tag="k")
        orphans = store(api_account, 400, 25, tag="k")  # stored, but their nudges were lost (broker down)
        for pk in nudged:
            nudge(broker, [pk])

        first = start_worker(database_url=subprocess_database_url(), broker_url=worker_broker_url)
        wait_until(
            lambda: counts().get("processed", 0) > 0 or not first.alive,
            timeout=WORKER_START_S,
            what="the first worker to apply something",
            every=0.01,
        )
        assert first.alive, first.output()
        first.kill9()  # mid-batch: in-flight transactions roll back, in-flight messages stay unacknowledged
        killed_at = counts()
        print(f"after kill -9: {killed_at}")  # shown with -s or on failure
        assert killed_at.get("pending", 0) >= len(orphans), killed_at
        assert "failed" not in killed_at

        second = start_worker(database_url=subprocess_database_url(), broker_url=worker_broker_url)
        sweep(broker, 0)
        wait_until(
            lambda: counts() == {"processed": 425} or not second.alive,
            timeout=WORKER_START_S + 60,
            what=f"the sweep to apply everything left pending after the kill ({killed_at})",
        )
        assert second.alive, second.output()
        assert_applied_exactly_once(425)
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.stop()
        broker.close()
