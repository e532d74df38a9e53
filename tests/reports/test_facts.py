"""The per-ticket report facts: written as messages happen, equal to a recomputation, backfilled in batches."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.services import channel_account_save
from omnidesk.reports.facts import FACT_FIELDS, facts_backfill
from omnidesk.reports.metrics import figures_compute
from omnidesk.tickets.models import Ticket
from omnidesk.tickets.outbox import outbound_send
from omnidesk.tickets.replies import reply_create
from tests.conftest import api_body
from tests.support.http import Script, http_server

from .builders import Spec, build
from .test_report import SCOPE, same, small_dataset


def stored() -> dict[int, tuple]:  # type: ignore[type-arg]
    return {t[0]: t[1:] for t in Ticket.objects.order_by("pk").values_list("pk", *FACT_FIELDS)}


def forget_facts() -> None:
    Ticket.objects.update(first_message_public=False, next_response_samples=[], ingest_lag_samples=[],
                           ingest_lag_elsewhere={})


@pytest.mark.django_db
def test_backfill_in_batches_gives_the_facts_written_per_ticket_and_the_same_report():
    small_dataset()
    before, figures = stored(), figures_compute(scope=SCOPE)
    assert before[min(before)] == (False, [300.0], [2.0, 2.0], {})  # ticket A, as defined
    forget_facts()
    assert facts_backfill(batch=3) == len(before)  # several batches, tickets at their edges
    assert stored() == before
    same(figures_compute(scope=SCOPE), figures)


@pytest.mark.django_db
def test_backfill_command(capsys):  # type: ignore[no-untyped-def]
    small_dataset()
    before = stored()
    forget_facts()
    call_command("report_facts_backfill", "--batch", "4")
    assert stored() == before
    assert f"report facts of {len(before)} tickets" in capsys.readouterr().out


@pytest.fixture
def remote():  # type: ignore[no-untyped-def]
    with http_server(Script(answers=[])) as script:
        yield script


def test_facts_follow_ingest_replies_and_sends(api_account, post_hook, remote, db):  # type: ignore[no-untyped-def]
    """Through the real services: a public mention, a reply, a late follow-up, a second reply."""
    channel_account_save(
        kind="api", slug="acme-api", name="Acme", config={"callback_url": remote.url + "/cb"}, account=api_account
    )
    agent = get_user_model().objects.create_user("alice")
    post_hook("acme-api", api_body(id="m-1", public=True))
    inbound_events_apply()
    ticket = Ticket.objects.get()
    assert ticket.first_message_public is True
    assert [round(v / 86400) for v in ticket.ingest_lag_samples] == [21]  # sent three weeks ago
    assert ticket.next_response_samples == []

    remote.answer(200, {"id": "r-1"})
    remote.answer(200, {"id": "r-2"})  # the last answer repeats: kept for the second reply

    def reply_and_send() -> None:
        message = reply_create(ticket=Ticket.objects.get(), user=agent, text="On it.")
        assert outbound_send(outbound_id=message.outbound.pk).status == "sent"

    reply_and_send()
    follow_up_at = datetime.now(timezone.utc)
    post_hook("acme-api", api_body(id="m-2", public=True, text="Any news?", sent_at=follow_up_at.isoformat()))
    inbound_events_apply()
    assert Ticket.objects.get().next_response_samples == []  # waiting: not in the sample
    reply_and_send()
    ticket = Ticket.objects.get()
    reply_sent = ticket.messages.get(external_id="r-2").sent_at
    assert ticket.next_response_samples == [(reply_sent - follow_up_at).total_seconds()]
    assert len(ticket.ingest_lag_samples) == 2

    live = stored()
    forget_facts()
    facts_backfill()
    assert stored() == live  # what the services wrote is what the definitions give


def test_both_paths_agree_on_random_tickets_and_two_bucket_widths(postgres, db):  # type: ignore[no-untyped-def]
    """Random times to the microsecond, hour and minute buckets: the PostgreSQL path gives the portable numbers."""
    rng = random.Random(7)
    for i in range(60):
        fr = rng.uniform(1, 7200)
        build(Spec(rng.choice(["email", "twitter"]), fr=fr, frb=fr * 0.5, fr_met=i % 3 > 0, solved=fr + rng.uniform(1, 9000),
                   res_met=True, lag=rng.uniform(0, 0.3), public=i % 2 == 0,
                   follow_ups=[(fr + 10, fr + 10 + rng.uniform(1, 3000))] if i % 4 else []))
    for resolution_s in (3600, 60):
        pg = figures_compute(scope=SCOPE, resolution_s=resolution_s, portable=False)
        same(pg, figures_compute(scope=SCOPE, resolution_s=resolution_s, portable=True))
    assert pg["all"].volume == 60 and pg["all"].n["next_response"] == 45


def test_ingest_lag_of_a_message_on_another_channel_counts_for_that_channel(postgres, db):  # type: ignore[no-untyped-def]
    """An email ticket the customer follows up by phone: the call's lag is the phone channel's, on both paths."""
    build(Spec("email", fr=600, lag=30, follow_ups=[(1000, 1300), (2000, None)], follow_up_channel="phone"))
    build(Spec("phone", fr=60, lag=1))
    email = Ticket.objects.get(origin_account__kind="email")
    assert (email.ingest_lag_samples, email.ingest_lag_elsewhere) == ([30.0], {"phone": [30.0, 30.0]})
    pg = figures_compute(scope=SCOPE, portable=False)
    same(pg, figures_compute(scope=SCOPE, portable=True))
    assert (pg["email"].n["ingest_lag"], pg["phone"].n["ingest_lag"], pg["all"].n["ingest_lag"]) == (1, 3, 4)
    assert pg["phone"].pct["ingest_lag"] == {"p50": 30.0, "p99": 30.0}
    live = stored()
    forget_facts()
    facts_backfill()
    assert stored() == live
