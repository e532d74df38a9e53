"""Deadlines on real tickets: the clock starts at the platform's timestamp; pauses; warnings and breaches once."""

from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.auth import get_user_model

from omnidesk.plugins.contract import Author, IdentityKind, IdentityRef, InboundMessage
from omnidesk.plugins.services import channel_account_save
from omnidesk.sla.models import Calendar, Policy
from omnidesk.sla.services import policy_for_ticket, sla_recompute, sla_remaining, sla_sweep
from omnidesk.tickets.ingest import message_ingest
from omnidesk.tickets.models import Ticket
from omnidesk.tickets.replies import callback_log, reply_create

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


@pytest.fixture
def account(api_account):
    return channel_account_save(kind="api", slug="acme-api", name="Acme", config={"callback_url": "http://127.0.0.1:9/"}, account=api_account)


def write(account, ext, sent_at, *, received_at=None, public=False, who="u1"):
    item = InboundMessage(
        external_id=ext, event_type="message", thread_key="t", text="help",
        author=Author(IdentityRef(IdentityKind.EXTERNAL, who, "acme-api")), sent_at=sent_at,
        visibility="public" if public else "private",
    )
    return message_ingest(account=account, item=item, received_at=received_at or sent_at).message.ticket


def test_the_default_policy_applies_to_every_channel_without_a_channel_condition(account):
    now = datetime.now(timezone.utc)
    ticket = write(account, "m1", now - 10 * 60 * timedelta(seconds=1))
    assert ticket.sla_policy.name == "Standard" and "no conditions" in ticket.sla_reason
    assert Policy.objects.get(name="Standard").conditions == {}
    # normal priority: first response in 4 h from when the customer WROTE, not when we saw it
    assert ticket.first_response_due_at == ticket.customer_first_message_at + 4 * H
    assert ticket.resolution_due_at == ticket.customer_first_message_at + 48 * H
    assert ticket.next_response_due_at is None


def test_the_clock_starts_at_the_platform_time_even_when_we_saw_it_late(account):
    now = datetime.now(timezone.utc)
    ticket = write(account, "m1", sent_at=now - 3 * H, received_at=now)  # a slow poller
    assert ticket.first_response_due_at == now - 3 * H + 4 * H
    assert ticket.messages.get().received_at - ticket.messages.get().sent_at == 3 * H  # ingest lag kept


def test_first_matching_policy_wins_and_says_why(account):
    vip = Policy.objects.create(name="Public urgent", position=1, conditions={"visibility": ["public"], "priority": ["urgent"]},
                                targets={"urgent": {"first_response": 15}})
    now = datetime.now(timezone.utc)
    ticket = write(account, "m1", now, public=True)
    assert policy_for_ticket(ticket)[0].name == "Standard"  # priority normal: conditions must ALL hold
    ticket.priority = "urgent"
    sla_recompute(ticket=ticket)
    assert ticket.sla_policy == vip and "visibility public" in ticket.sla_reason
    assert ticket.first_response_due_at == ticket.customer_first_message_at + timedelta(minutes=15)


def test_business_hours_calendar(account):
    cal = Calendar.objects.create(name="Berlin", timezone="Europe/Berlin", hours={"mon": [["09:00", "17:00"]]},
                                  holiday_country="DE")
    Policy.objects.create(name="Berlin", position=1, calendar=cal, targets={"normal": {"first_response": 60}})
    monday_evening = datetime(2026, 11, 23, 16, 30, tzinfo=timezone.utc)  # 17:30 in Berlin
    ticket = write(account, "m1", monday_evening)
    assert ticket.first_response_due_at == datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)  # next Monday 10:00 CET


def test_a_reply_meets_first_response_and_a_new_message_starts_next_response(account):
    agent = get_user_model().objects.create_user("alice")
    now = datetime.now(timezone.utc)
    ticket = write(account, "m1", now - H)
    reply_create(ticket=ticket, user=agent, text="on it")
    ticket.refresh_from_db()
    assert ticket.first_response_due_at is None and ticket.next_response_due_at is None
    ticket = write(account, "m2", now)
    assert ticket.next_response_due_at == now + 8 * H
    reply_create(ticket=ticket, user=agent, text="fixed")
    ticket.refresh_from_db()
    assert ticket.next_response_due_at is None


def test_pending_pauses_resolution_and_the_customers_reply_resumes_it(account):
    now = datetime.now(timezone.utc)
    ticket = write(account, "m1", now - 10 * H)
    Ticket.objects.filter(pk=ticket.pk).update(status="pending")
    ticket.refresh_from_db()
    sla_recompute(ticket=ticket, now=now - 6 * H)  # 4 h used, then paused
    assert ticket.resolution_due_at is None and ticket.resolution_used_s == pytest.approx(4 * 3600)
    ticket = write(account, "m2", now)  # the customer answers: open again, clock resumes now
    ticket.refresh_from_db()
    assert ticket.status == "open"
    assert abs((ticket.resolution_due_at - (now + 44 * H)).total_seconds()) < 5
    ticket.status = "solved"
    sla_recompute(ticket=ticket)
    assert ticket.resolution_due_at is None and ticket.first_response_due_at is None


def test_warning_then_breach_announced_once_each_by_the_sweep(account):
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    ticket = write(account, "m1", start)
    assert ticket.sla_next_check_at == start + 0.8 * 4 * H  # first warning at 80 %
    assert sla_sweep(now=start + 3 * H) == {}
    warned = sla_sweep(now=start + 3.5 * H)
    assert [(a.metric, a.kind) for a in warned[ticket.pk]] == [("first_response", "warning")]
    assert sla_sweep(now=start + 3.6 * H) == {}
    breached = sla_sweep(now=start + 5 * H)
    assert [(a.metric, a.kind) for a in breached[ticket.pk]] == [("first_response", "breach")]
    assert sla_sweep(now=start + 6 * H) == {}
    assert list(ticket.events.filter(action__startswith="sla_").values_list("action", "field")) == [
        ("sla_warning", "first_response"), ("sla_breach", "first_response"),
    ]


def test_the_sweep_reads_only_due_tickets(account, django_assert_max_num_queries):
    now = datetime.now(timezone.utc)
    for n in range(5):
        write(account, f"m{n}", now, who=f"u{n}")
    with django_assert_max_num_queries(3):
        assert sla_sweep(now=now + H) == {}


def test_a_logged_call_back_that_reached_the_customer_counts(account):
    agent = get_user_model().objects.create_user("alice")
    ticket = write(account, "m1", datetime.now(timezone.utc))
    callback_log(ticket=ticket, user=agent, outcome="reached", duration_s=60)
    ticket.refresh_from_db()
    assert ticket.first_response_due_at is None


def test_remaining_time_for_the_api(account):
    now = datetime.now(timezone.utc)
    ticket = write(account, "m1", now - 5 * H)
    left = sla_remaining(ticket, now=now)
    assert left["first_response"]["breached"] and left["first_response"]["seconds_left"] == -3600
    assert not left["resolution"]["breached"]
    assert Ticket.objects.filter(first_response_due_at__lt=now).count() == 1


def test_outcomes_are_frozen_for_reports(account):
    agent = get_user_model().objects.create_user("alice")
    now = datetime.now(timezone.utc)
    late = write(account, "m1", now - 5 * H, who="late")
    on_time = write(account, "m2", now - H, who="quick")
    assert on_time.sla_due_at == on_time.first_response_due_at  # the earliest running deadline
    for ticket in (late, on_time):
        reply_create(ticket=ticket, user=agent, text="hello")
        ticket.refresh_from_db()
    assert (late.first_response_met, on_time.first_response_met) == (False, True)
    assert late.first_response_business_s == pytest.approx(5 * 3600, abs=5)
    Ticket.objects.filter(pk=on_time.pk).update(status="solved")
    on_time.refresh_from_db()
    sla_recompute(ticket=on_time)
    assert on_time.resolution_met is True and on_time.sla_due_at is None


def test_a_rule_chosen_policy_wins(account):
    quick = Policy.objects.create(name="Escalated", position=500, targets={"normal": {"first_response": 10}})
    ticket = write(account, "m1", datetime.now(timezone.utc))
    ticket.sla_policy_override = quick
    sla_recompute(ticket=ticket)
    assert ticket.sla_policy == quick and "routing rule" in ticket.sla_reason
