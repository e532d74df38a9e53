"""Public → private on one ticket; logged call-backs; reply windows; partial batches; read watermarks."""

from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.auth import get_user_model

from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
from omnidesk.plugins.config import ConfigSchema
from omnidesk.plugins.contract import (
    Author,
    CallDetails,
    Capabilities,
    ChannelPlugin,
    DeliveryUpdate,
    Feature,
    IdentityKind,
    IdentityRef,
    InboundMessage,
    Invalid,
    OutboundReply,
    RawEvent,
    ReplyWindowClosed,
)
from omnidesk.plugins.services import channel_account_save
from omnidesk.tickets.ingest import delivery_update_apply, message_ingest
from omnidesk.tickets.models import Message, OutboundMessage, Ticket
from omnidesk.tickets.replies import ReplyRefused, callback_log, ticket_handoff
from tests.conftest import api_body

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


class Windowed(ChannelPlugin[ConfigSchema]):
    kind = "windowed"
    label = "Messenger-like"
    capabilities = Capabilities(
        features=frozenset({Feature.PRIVATE_REPLY}), reply_window=timedelta(hours=24),
        extended_reply_window=timedelta(days=7),
    )
    config_schema = ConfigSchema
    event_types = {"message": "a message"}


def _reply(last_written: datetime | None, visibility="private") -> OutboundReply:
    return OutboundReply(
        idempotency_key="k", to=IdentityRef(IdentityKind.FACEBOOK, "psid", "page"), text="hi", visibility=visibility,
        ticket_ref=1, customer_last_message_at=last_written,
    )


@pytest.mark.parametrize(
    "age, tagged",
    [(timedelta(hours=1), False), (timedelta(hours=24), False), (timedelta(hours=25), True), (timedelta(days=7), True)],
)
def test_reply_windows(age, tagged):
    assert Windowed(ConfigSchema()).check_window(_reply(NOW - age), now=NOW) is tagged


def test_past_the_last_window_the_reply_is_refused_with_the_reason():
    with pytest.raises(ReplyWindowClosed, match="last wrote 8 days ago; Messenger-like allows replies for 7 days"):
        Windowed(ConfigSchema()).check_window(_reply(NOW - timedelta(days=8)), now=NOW)
    assert Windowed(ConfigSchema()).check_window(_reply(None), now=NOW) is False


@pytest.fixture
def agent():
    return get_user_model().objects.create_user("alice")


@pytest.mark.django_db
def test_handoff_acknowledges_publicly_and_continues_privately_on_the_same_ticket(api_account, post_hook, agent):
    channel_account_save(kind="api", slug="acme-api", name="Acme", config={"callback_url": "http://127.0.0.1:9/"}, account=api_account)
    post_hook("acme-api", api_body(public=True))
    inbound_events_apply()
    ticket = Ticket.objects.get()
    ack, private = ticket_handoff(ticket=ticket, user=agent, private_text="Could you send us your order number?")
    assert (ack.visibility, private.visibility) == ("public", "private")
    assert ack.ticket_id == private.ticket_id == ticket.pk
    assert "private message" in ack.text
    assert OutboundMessage.objects.filter(in_reply_to="m-1").count() == 2
    ticket.refresh_from_db()
    assert ticket.handoff_at is not None and ticket.first_response_at is not None
    assert ticket.events.filter(action="handoff").exists()


@pytest.mark.django_db
def test_handoff_needs_a_public_message(api_account, post_hook, agent):
    post_hook("acme-api", api_body(public=False))
    inbound_events_apply()
    with pytest.raises(ReplyRefused, match="no public message"):
        ticket_handoff(ticket=Ticket.objects.get(), user=agent, private_text="hi")


def _missed_call(account):
    author = Author(IdentityRef(IdentityKind.PHONE, "+442079460958"))
    item = InboundMessage(
        external_id="call-1", event_type="call", thread_key="+442079460958", author=author, text="Missed call",
        sent_at=NOW, call=CallDetails(direction="inbound", missed=True),
    )
    return message_ingest(account=account, item=item, received_at=NOW).message.ticket


@pytest.mark.django_db
def test_a_call_back_that_reached_the_customer_is_the_first_response(api_account, agent):
    ticket = _missed_call(api_account)
    callback_log(ticket=ticket, user=agent, outcome="no_answer", duration_s=0)
    ticket.refresh_from_db()
    assert ticket.first_response_at is None
    message = callback_log(ticket=ticket, user=agent, outcome="voicemail", notes="left a message", duration_s=35)
    ticket.refresh_from_db()
    assert ticket.first_response_at == message.sent_at
    assert message.call == {"direction": "outbound", "duration_s": 35, "missed": False, "outcome": "voicemail", "to": "+442079460958"}
    assert list(ticket.events.filter(action="callback_logged").values_list("new", flat=True)) == ["no_answer", "voicemail"]
    with pytest.raises(ReplyRefused, match="outcome must be one of"):
        callback_log(ticket=ticket, user=agent, outcome="maybe")


class Batch(ChannelPlugin[ConfigSchema]):
    """A CDR-like batch: one good record, one bad."""

    kind = "batch"
    label = "Batch"
    capabilities = Capabilities(features=frozenset({Feature.PULL}))
    config_schema = ConfigSchema
    event_types = {"call": "a call"}

    def parse(self, raw):
        author = Author(IdentityRef(IdentityKind.PHONE, "+14155552671"))
        rows = raw.body.decode().splitlines()
        out = []
        for n, row in enumerate(rows, 1):
            if row == "bad":
                out.append(Invalid(f"line {n}", "bad date 'yesterday'"))
            elif row == "badphone":
                out.append(InboundMessage(external_id=row, event_type="call", thread_key=row, text="call", sent_at=NOW,
                                          author=Author(IdentityRef(IdentityKind.PHONE, "garbage"))))
            else:
                out.append(InboundMessage(external_id=row, event_type="call", thread_key=row, author=author, text="call",
                                          sent_at=NOW, call=CallDetails(direction="inbound")))
        return out


@pytest.mark.django_db
def test_a_batch_with_bad_records_applies_the_good_ones_and_names_the_bad(monkeypatch):
    from omnidesk.plugins.registry import registry

    registry().plugins["batch"] = Batch
    try:
        account = channel_account_save(kind="batch", slug="cdr", name="CDR", config={})
        inbound_event_store(account=account, raw=RawEvent(body=b"c1\nbad\nc2"))
        inbound_event_store(account=account, raw=RawEvent(body=b"bad"))
        inbound_events_apply()
    finally:
        registry().plugins.pop("batch")
    mixed, all_bad = InboundEvent.objects.order_by("pk")
    assert mixed.status == "processed" and "1 invalid record" in mixed.error
    assert mixed.summary["invalid"] == 1 and "invalid line 2: bad date 'yesterday'" in mixed.summary["notes"]
    assert all_bad.status == "failed" and "all 1 record(s) invalid" in all_bad.error
    assert set(Message.objects.values_list("external_id", flat=True)) == {"c1", "c2"}


@pytest.mark.django_db
def test_a_read_watermark_marks_every_earlier_reply_read(api_account, post_hook, agent):
    post_hook("acme-api", api_body())
    inbound_events_apply()
    ticket = Ticket.objects.get()
    identity = ticket.customer.identities.get(kind="external")
    for n, minutes in enumerate((0, 10, 30)):
        m = Message.objects.create(ticket=ticket, account=api_account, external_id=f"o{n}", direction="out",
                                   visibility="private", received_at=NOW, sent_at=NOW + timedelta(minutes=minutes), state="sent")
        OutboundMessage.objects.create(message=m, account=api_account, to_identity=identity, status="sent")
    update = DeliveryUpdate("", "read", recipient=IdentityRef(IdentityKind.EXTERNAL, "u-1", "acme-api"),
                            watermark=NOW + timedelta(minutes=15))
    assert "2 message(s)" in delivery_update_apply(account=api_account, update=update)
    assert dict(Message.objects.filter(direction="out").values_list("external_id", "state")) == {"o0": "read", "o1": "read", "o2": "sent"}


@pytest.mark.django_db
def test_a_call_answered_live_is_the_first_response(api_account):
    author = Author(IdentityRef(IdentityKind.PHONE, "+442079460958"))
    item = InboundMessage(
        external_id="call-9", event_type="call", thread_key="+442079460958", author=author, text="Call, 4 min",
        sent_at=NOW, call=CallDetails(direction="inbound", duration_s=240, answered_by="201"),
    )
    ticket = message_ingest(account=api_account, item=item, received_at=NOW).message.ticket
    ticket.refresh_from_db()
    assert ticket.first_response_at == NOW and ticket.status == "open"
    assert ticket.first_response_due_at is None and ticket.next_response_due_at is None


@pytest.mark.django_db
def test_one_unusable_author_in_a_batch_is_one_invalid_record():
    from omnidesk.plugins.registry import registry

    registry().plugins["batch"] = Batch
    try:
        account = channel_account_save(kind="batch", slug="cdr", name="CDR", config={})
        inbound_event_store(account=account, raw=RawEvent(body=b"c1\nbadphone"))
        inbound_events_apply()
    finally:
        registry().plugins.pop("batch")
    event = InboundEvent.objects.get()
    assert event.status == "processed" and event.summary["invalid"] == 1
    assert any("not a phone number" in n for n in event.summary["notes"])
    assert list(Message.objects.values_list("external_id", flat=True)) == ["c1"]
