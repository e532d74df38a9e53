"""The database is the truth; the broker is a nudge. Sweeps re-enqueue what a lost nudge left behind."""

from datetime import timedelta

import dramatiq
import pytest
from django.utils import timezone

from omnidesk.inbox import scheduler
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_pending_ids
from tests.conftest import api_body

pytestmark = pytest.mark.django_db


def test_pending_ids_respects_the_grace_period(api_account, post_hook):
    post_hook("acme-api", api_body(id="old"))
    post_hook("acme-api", api_body(id="new", thread="t2"))
    InboundEvent.objects.filter(pk=InboundEvent.objects.order_by("pk").first().pk).update(
        received_at=timezone.now() - timedelta(minutes=5)
    )
    assert len(inbound_pending_ids()) == 1
    assert len(inbound_pending_ids(older_than_s=0)) == 2


def test_the_sweep_enqueues_pending_events_on_the_broker(api_account, post_hook):
    post_hook("acme-api", api_body())
    broker = dramatiq.get_broker()
    broker.flush_all()
    from omnidesk.inbox.tasks import sweep_inbound

    sweep_inbound(0)  # run the actor's function here
    queued = [m for m in broker.queues["inbound"].queue]
    assert len(queued) == 1


def test_the_scheduler_runs_start_up_and_periodic_jobs_and_survives_a_broker_outage():
    import threading

    sent = []
    stop = threading.Event()

    def broker_down():
        raise ConnectionError("broker down")

    def periodic():
        sent.append("tick")
        if sent.count("tick") >= 3:
            stop.set()

    schedule = [
        scheduler.Job("once", None, lambda: sent.append("once"), at_start=True),
        scheduler.Job("down", 0.0, broker_down, at_start=True),
        scheduler.Job("tick", 0.0, periodic),
    ]
    scheduler.run_forever(stop, schedule=schedule, tick_s=0.001)
    assert sent == ["once", "tick", "tick", "tick"]


def test_the_shipped_schedule_sweeps_everything_at_start_up():
    names = {j.name: j for j in scheduler.jobs()}
    assert names["sweep-inbound-all"].at_start and names["sweep-inbound-all"].every_s is None
    assert names["sweep-inbound"].every_s == 60
