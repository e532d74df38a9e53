"""A policy or calendar change owes a recompute of every open ticket, and the debt survives a lost nudge.

The nudge after the commit is only the fast path: the request is a database row written with the
change, and the SLA sweep nudges again when nothing has run it.
"""

from datetime import timedelta

import dramatiq
import pytest
from django.utils import timezone

from omnidesk.broker import nudges_drain
from omnidesk.sla.models import Calendar, Policy, RecomputeRequest
from omnidesk.sla.recompute import RECOMPUTE_GRACE_S, recompute_if_owed, recompute_requested
from omnidesk.sla.services import policy_save
from omnidesk.sla.tasks import sweep_sla
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db

LATER = timedelta(seconds=RECOMPUTE_GRACE_S + 1)


def queued_recomputes() -> int:
    nudges_drain()
    return sum(1 for m in dramatiq.get_broker().queues["maintenance"].queue if b"recompute_open_tickets" in m)


@pytest.fixture
def quiet_broker():
    dramatiq.get_broker().flush_all()


def test_a_lost_nudge_is_found_by_the_sweep_and_the_tickets_recomputed(api_account, deliver, quiet_broker):
    ticket = deliver()
    standard = Policy.objects.get(name="Standard")
    policy_save(policy=standard, targets={"normal": {"first_response": 60}})
    dramatiq.get_broker().flush_all()  # the broker lost the nudge
    assert not recompute_if_owed()  # within the grace period the first nudge may still be on its way
    assert recompute_if_owed(now=timezone.now() + LATER) and queued_recomputes() == 1

    assert recompute_requested() == 1  # what the actor runs
    ticket.refresh_from_db()
    assert ticket.first_response_due_at == ticket.customer_first_message_at + timedelta(hours=1)
    mark = RecomputeRequest.objects.get()
    assert mark.done_for == mark.requested_at and mark.heartbeat_at is None
    dramatiq.get_broker().flush_all()
    assert not recompute_if_owed(now=timezone.now() + LATER) and queued_recomputes() == 0


def test_the_sla_sweep_actor_nudges_an_owed_recompute(quiet_broker):
    RecomputeRequest.objects.create(pk=1, requested_at=timezone.now() - LATER)
    sweep_sla()
    assert queued_recomputes() == 1


def test_a_running_recompute_is_not_started_twice_but_a_dead_one_is(quiet_broker):
    now = timezone.now()
    RecomputeRequest.objects.create(pk=1, requested_at=now - 2 * LATER, heartbeat_at=now - timedelta(seconds=5))
    assert not recompute_if_owed(now=now)
    RecomputeRequest.objects.filter(pk=1).update(heartbeat_at=now - LATER)  # its worker died mid-run
    assert recompute_if_owed(now=now)


def test_deleting_a_policy_through_the_api_recomputes_its_tickets(
    manager, api_account, deliver, quiet_broker, django_capture_on_commit_callbacks
):
    vip = Policy.objects.create(name="Fast", position=1, targets={"normal": {"first_response": 30}})
    ticket = deliver()
    assert ticket.sla_policy_id == vip.pk
    with django_capture_on_commit_callbacks(execute=True):
        resp = client_for(manager).delete(f"/api/v1/sla/policies/{vip.pk}/")
    assert resp.status_code == 204
    assert queued_recomputes() == 1  # the fast path: nudged after the commit
    recompute_requested()
    ticket.refresh_from_db()
    assert ticket.sla_policy.name == "Standard"
    assert ticket.first_response_due_at == ticket.customer_first_message_at + timedelta(hours=4)


def test_deleting_a_calendar_owes_a_recompute_and_one_in_use_is_refused(manager, quiet_broker):
    unused = Calendar.objects.create(name="Unused")
    assert client_for(manager).delete(f"/api/v1/sla/calendars/{unused.pk}/").status_code == 204
    assert RecomputeRequest.objects.get().requested_at is not None
    RecomputeRequest.objects.all().delete()
    used = Calendar.objects.create(name="Used")
    Policy.objects.create(name="P", calendar=used, targets={"normal": {"first_response": 60}})
    assert client_for(manager).delete(f"/api/v1/sla/calendars/{used.pk}/").status_code == 409
    assert not RecomputeRequest.objects.exists()  # refused: nothing changed, nothing owed


def test_the_list_endpoint_still_refuses_delete(manager):
    assert client_for(manager).delete("/api/v1/sla/policies/").status_code == 405
