"""Status signals through the API channel's webhook, and the bulk reply's rules per channel."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model

from omnidesk.incidents.bulk import bulk_reply_create, bulk_reply_deliver, incident_resolve
from omnidesk.incidents.detection import incidents_detect
from omnidesk.incidents.linking import Found, IncidentChangeInvalid, incident_links_add, incident_open
from omnidesk.incidents.models import BulkDelivery, Incident, IncidentTicket
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
from omnidesk.plugins.contract import RawEvent
from omnidesk.plugins.services import channel_account_save
from omnidesk.tickets.models import Message, OutboundMessage, TicketEvent

from .conftest import api_message_body
from .traffic import FB_PAGE, X_OWN_ID, Accounts, deliver, now_utc

pytestmark = pytest.mark.django_db


def status(update: str, level: str, **extra: object) -> bytes:
    return json.dumps({"type": "status", "id": f"sp-77-{update}", "incident": "sp-77", "status": level,
                       "title": "Mobile app login failures", "components": ["Mobile app"], **extra}).encode()


def post(post_hook, body: bytes) -> InboundEvent:  # type: ignore[no-untyped-def]
    response = post_hook("acme-api", body)
    assert response.status_code == 200, response.content
    inbound_events_apply()
    return InboundEvent.objects.get(pk=response.json()["event"])


def test_a_status_page_opens_the_incident_before_customers_write(post_hook, say) -> None:  # type: ignore[no-untyped-def]
    first = status("1", "investigating", text="Investigating login errors in the app.")
    event = post(post_hook, first)
    assert event.status == "processed" and "opened" in event.summary["notes"][0]
    incident = Incident.objects.get()
    assert (incident.status, incident.source, incident.signal_status) == ("active", "signal", "investigating")
    assert {"mobile", "app", "login", "app login"} <= set(incident.signature)
    # the same update again is a duplicate event; a new update changes the incident, not the count
    assert post_hook("acme-api", first).json()["duplicate"] is True
    post(post_hook, status("1", "investigating"))  # the same update re-sent with other bytes: still one incident
    post(post_hook, status("2", "identified", text="Cause found."))
    assert Incident.objects.get().signal_status == "identified" and Incident.objects.count() == 1
    # customers write: the detector links theirs (not the unrelated one) although no spike was needed
    tickets = say([("can't login to the app", now_utc()), ("where is my parcel", now_utc())])
    incidents_detect(settle_s=0)
    assert list(IncidentTicket.objects.values_list("ticket_id", flat=True)) == tickets[:1]
    event = post(post_hook, status("3", "resolved"))
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_at is not None
    assert TicketEvent.objects.filter(ticket_id=tickets[0], action="incident_resolved").exists()
    assert "resolved" in event.summary["notes"][0]


def test_bad_or_orphan_signals_are_told_not_dropped(post_hook, api_account) -> None:  # type: ignore[no-untyped-def]
    bad = post(post_hook, status("9", "on fire"))
    assert bad.status == "failed" and "status: must be one of" in bad.error
    orphan = post(post_hook, json.dumps({"type": "status", "id": "x-1", "incident": "never-opened",
                                          "status": "resolved", "title": "Old"}).encode())
    assert orphan.status == "processed" and "no incident was open" in orphan.summary["notes"][0]
    assert Incident.objects.count() == 0


@pytest.fixture
def manager():  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user("meg")


def _link_all(incident: Incident) -> None:
    incident_links_add(incident=incident, found=[
        Found(m.pk, m.ticket_id, m.account.kind, m.sent_at, frozenset())
        for m in Message.objects.filter(direction="in").select_related("account")
    ])


def test_messenger_window_x_length_and_refusals_decide_each_ticket(manager) -> None:  # type: ignore[no-untyped-def]
    facebook = channel_account_save(kind="facebook", slug="fb", name="Page", config={"page_id": FB_PAGE},
                                    secrets={"page_access_token": "t", "app_secret": "s", "verify_token": "v"})
    x = channel_account_save(kind="twitter", slug="x", name="X", config={"user_id": X_OWN_ID, "poll_enabled": False},
                             secrets={"consumer_key": "a", "consumer_secret": "b", "access_token": "c", "access_token_secret": "d"})
    api = channel_account_save(kind="api", slug="widget", name="Widget", config={"callback_url": ""}, secrets={"secret": "s"})
    accounts = Accounts(x=x, facebook=facebook, email=None, phone=None)
    now = now_utc()
    deliver(accounts, [("messenger", 1, "app login broken", now - timedelta(days=8)),
                       ("messenger", 2, "app login broken", now - timedelta(hours=1)),
                       ("x", 3, "app login broken", now - timedelta(minutes=5))])
    inbound_event_store(account=api, raw=RawEvent(body=api_message_body("app login broken", now)))
    inbound_events_apply()
    incident = incident_open(title="App login", signature=["app", "login"], source="manual")
    _link_all(incident)
    long_text = "We are on it. " * 30
    bulk, _ = bulk_reply_create(incident=incident, user=manager, text=long_text, public_text="We're on it: app logins fail.")
    report = bulk_reply_deliver(bulk_id=bulk.pk)
    assert report.outcomes == {"skipped": 1, "queued": 1, "shortened": 1, "failed": 1}
    by_channel = {d.outcome: d for d in BulkDelivery.objects.select_related("message")}
    assert "8 days ago" in by_channel["skipped"].note  # Messenger: past the 7-day human-agent window
    assert by_channel["shortened"].message.text == "We're on it: app logins fail."  # X: the public version
    assert "callback_url" in by_channel["failed"].note  # the widget cannot reply: said, not crashed
    assert OutboundMessage.objects.count() == 2


def test_a_bulk_reply_is_refused_when_the_incident_is_not_active(manager) -> None:  # type: ignore[no-untyped-def]
    incident = incident_open(title="Card payments", signature=["card"], source="manual", status="suggested")
    with pytest.raises(IncidentChangeInvalid, match="confirm it"):
        bulk_reply_create(incident=incident, user=manager, text="Sorry")
    Incident.objects.filter(pk=incident.pk).update(status="active")
    incident.refresh_from_db()
    with pytest.raises(IncidentChangeInvalid, match="no text"):
        bulk_reply_create(incident=incident, user=manager, text="   ")
    assert incident_resolve(incident=incident, user=manager, follow_up=False) is None
    with pytest.raises(IncidentChangeInvalid, match="resolved; it cannot become resolved"):
        incident_resolve(incident=incident, user=manager)


def test_tickets_linked_after_a_bulk_reply_get_it_on_the_next_run_and_no_one_twice(manager, say) -> None:  # type: ignore[no-untyped-def]
    from tests.api.conftest import CALLBACK
    from omnidesk.plugins.models import ChannelAccount

    account = ChannelAccount.objects.get(slug="acme-api")
    channel_account_save(kind="api", slug=account.slug, name=account.name, config={"callback_url": CALLBACK},
                         account=account)
    first = say([("app login broken", now_utc())])
    incidents_detect(settle_s=0)  # a new incident takes what the detector has read of the last windows
    incident = incident_open(title="App login", signature=["app", "login"], source="manual")
    bulk, created = bulk_reply_create(incident=incident, user=manager, text="We are fixing it.")
    assert created and bulk_reply_deliver(bulk_id=bulk.pk).outcomes == {"queued": 1}
    second = say([("app login still broken", now_utc())])
    incidents_detect(settle_s=0)
    again, created = bulk_reply_create(incident=incident, user=manager, text="We are fixing it.")
    assert again.pk == bulk.pk and not created
    report = bulk_reply_deliver(bulk_id=bulk.pk)
    assert report.outcomes == {"queued": 1} and report.already == 1
    replies = Message.objects.filter(direction="out", text="We are fixing it.").values_list("ticket_id", flat=True)
    assert sorted(replies) == sorted(first + second)
