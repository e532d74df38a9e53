"""The Facebook channel through the whole desk: /hooks/ → inbound events → tickets → outbox → fake Graph API."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.auth import get_user_model

from channels_plugins.facebook.webhook import sign
from omnidesk.customers.models import Identity
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.contract import ReplyWindowClosed
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.services import channel_account_save
from omnidesk.tickets.models import Message, OutboundMessage, Ticket
from omnidesk.tickets.outbox import outbound_send, outbox_due_ids
from omnidesk.tickets.replies import reply_create, ticket_handoff

from .conftest import APP_SECRET, PAGE, SECRETS, by_page, fixture, graph_error, serve_pages

POST = f"{PAGE}_901097836652708"
COMMENT = "901097836652708_903438993085259"
PSID = "987654321432"
CONVERSATION = "t_10161452637141782"
pytestmark = pytest.mark.django_db


@pytest.fixture
def account(graph, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return channel_account_save(
        kind="facebook", slug="acme-facebook", name="Acme Page",
        config={"page_id": PAGE, "graph_url": graph.url_for("/")}, secrets=SECRETS,
    )


@pytest.fixture
def agent():  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user("alice")


@pytest.fixture
def deliver(client, account):  # type: ignore[no-untyped-def]
    """POST a signed webhook body to the account and apply it; returns the stored event."""

    def post(body: bytes | dict) -> InboundEvent:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = client.generic("POST", "/hooks/acme-facebook/", raw, content_type="application/json",
                                  HTTP_X_HUB_SIGNATURE_256=sign(APP_SECRET, raw))
        assert response.status_code == 200, response.content
        inbound_events_apply()
        return InboundEvent.objects.get(pk=response.json()["event"])

    return post


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def messenger(text: str, *, mid: str, at: datetime, psid: str = PSID) -> dict:
    event = {"sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": ms(at), "message": {"mid": mid, "text": text}}
    return {"object": "page", "entry": [{"id": PAGE, "time": ms(at), "messaging": [event]}]}


def comment(text: str, *, comment_id: str = COMMENT, at: datetime, parent: str = POST) -> dict:
    value = {"item": "comment", "verb": "add", "comment_id": comment_id, "post_id": POST, "parent_id": parent,
             "from": {"id": "5550001112223", "name": "Rosa Parks"}, "created_time": int(at.timestamp()), "message": text}
    return {"object": "page", "entry": [{"id": PAGE, "time": int(at.timestamp()), "changes": [{"field": "feed", "value": value}]}]}


def sent_forms(graph) -> list[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    return [(request.path, request.form.to_dict()) for request, _ in graph.log]


def test_a_batch_makes_every_message_and_counts_the_rest(deliver):
    event = deliver(fixture("comment__batch_pages_and_messenger"))
    assert event.status == "processed", event.error
    assert event.summary["messages"] == 4 and event.summary["ignored:reaction"] == 1 and event.summary["updates"] == 1
    assert Ticket.objects.count() == 4  # Rosa, Mary, Ada (other page), the Messenger person
    assert set(Message.objects.values_list("visibility", flat=True)) == {"public", "private"}


def test_comments_on_one_post_by_one_person_are_one_ticket(deliver):
    now = datetime.now(timezone.utc)
    deliver(comment("My order arrived broken", at=now - timedelta(minutes=5)))
    deliver(comment("Hello??", comment_id="901097836652708_2", at=now, parent=COMMENT))
    ticket = Ticket.objects.get()
    assert ticket.messages.count() == 2 and ticket.subject == "My order arrived broken"


def test_comment_edits_hides_and_removals_update_the_message(deliver):
    deliver(fixture("comment__top_level"))
    message = Message.objects.get(external_id=COMMENT)
    for name, state in [("feed_change__comment_edited", "edited"), ("feed_change__comment_hidden", "hidden"),
                        ("feed_change__comment_unhidden", "received"), ("feed_change__comment_removed", "removed")]:
        event = deliver(fixture(name))
        assert event.status == "processed", event.error
        message.refresh_from_db()
        assert message.state == state, name
    assert message.text.endswith("(edited: and late).")
    assert message.metadata["original_text"] == "My order #1042 arrived broken. Who can help?"


def test_echoes_and_page_posts_make_no_ticket(deliver):
    for name in ("echo__our_reply", "page_post__our_comment_reply", "reaction__love_on_comment", "standby__customer_message"):
        assert deliver(fixture(name)).status == "ignored"
    assert Ticket.objects.count() == 0
    unknown = deliver(fixture("unsupported__unknown_field"))
    assert unknown.status == "failed" and unknown.error.startswith("unsupported_event")


@pytest.mark.parametrize(
    ("age", "expected"),
    [(timedelta(hours=2), {"messaging_type": "RESPONSE"}),
     (timedelta(days=3), {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"})],
)
def test_messenger_replies_within_the_windows(deliver, graph, agent, age, expected):
    graph.expect_request("/v23.0/me/messages", method="POST").respond_with_json({"recipient_id": PSID, "message_id": "m_out-1"})
    deliver(messenger("Where is my parcel?", mid="m_in-1", at=datetime.now(timezone.utc) - age))
    message = reply_create(ticket=Ticket.objects.get(), user=agent, text="It left the depot today.")
    assert outbound_send(outbound_id=message.outbound.pk).status == "sent"
    ((path, form),) = sent_forms(graph)
    assert path == "/v23.0/me/messages" and json.loads(form["recipient"]) == {"id": PSID}
    assert {k: form[k] for k in ("messaging_type", "tag") if k in form} == expected
    message.refresh_from_db()
    assert (message.state, message.external_id) == ("sent", "m_out-1")


def test_past_seven_days_the_reply_is_refused_and_other_identities_offered(deliver, graph, agent):
    deliver(messenger("Hello?", mid="m_in-old", at=datetime.now(timezone.utc) - timedelta(days=8)))
    ticket = Ticket.objects.get()
    Identity.objects.create(customer=ticket.customer, kind="email", value="rosa@example.com")
    with pytest.raises(ReplyWindowClosed) as info:
        reply_create(ticket=ticket, user=agent, text="Sorry for the wait")
    assert "8 days ago" in str(info.value) and "email rosa@example.com" in str(info.value)
    assert OutboundMessage.objects.count() == 0 and graph.log == []


def test_an_expired_token_holds_replies_until_the_page_is_reconnected(deliver, graph, agent, account):
    graph.expect_ordered_request("/v23.0/me/messages").respond_with_data(
        graph_error(190, "Error validating access token: The session has been invalidated.", subcode=460),
        status=400, content_type="application/json",
    )
    graph.expect_ordered_request("/v23.0/me/messages").respond_with_json({"recipient_id": PSID, "message_id": "m_late"})
    deliver(messenger("Hi", mid="m_in-2", at=datetime.now(timezone.utc) - timedelta(minutes=3)))
    message = reply_create(ticket=Ticket.objects.get(), user=agent, text="Hello!")
    outbound = message.outbound
    assert outbound_send(outbound_id=outbound.pk).status == "retry"
    account.refresh_from_db()
    assert account.needs_reauthorization and "190/460" in account.last_error
    OutboundMessage.objects.update(next_attempt_at=None)
    assert outbound_send(outbound_id=outbound.pk).status == "waiting-for-reauthorization"
    # The admin pastes a new token; the account is cleared for sending (the core leaves that step to them).
    account = channel_account_save(kind="facebook", slug=account.slug, name=account.name, config=account.config,
                                   secrets={"page_access_token": "EAAB-new-token"}, account=account)
    ChannelAccount.objects.filter(pk=account.pk).update(needs_reauthorization=False)
    assert outbound_send(outbound_id=outbound.pk).status == "sent"
    first, second = (form for _, form in sent_forms(graph))
    assert first["access_token"] != second["access_token"] == "EAAB-new-token"
    assert first["appsecret_proof"] != second["appsecret_proof"]
    account.refresh_from_db()
    assert not account.needs_reauthorization


def test_delivery_and_read_receipts_update_our_replies(deliver, graph, agent):
    graph.expect_request("/v23.0/me/messages").respond_with_json({"recipient_id": PSID, "message_id": "m_out-9"})
    deliver(messenger("Hi", mid="m_in-3", at=datetime.now(timezone.utc) - timedelta(minutes=3)))
    message = reply_create(ticket=Ticket.objects.get(), user=agent, text="Hello!")
    outbound_send(outbound_id=message.outbound.pk)
    receipt = {"sender": {"id": PSID}, "recipient": {"id": PAGE}}
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    deliver({"object": "page", "entry": [{"id": PAGE, "time": ms(soon), "messaging": [
        {**receipt, "delivery": {"mids": ["m_out-9"], "watermark": ms(soon), "seq": 1}}]}]})
    message.refresh_from_db()
    assert message.state == "delivered"
    deliver({"object": "page", "entry": [{"id": PAGE, "time": ms(soon), "messaging": [
        {**receipt, "timestamp": ms(soon), "read": {"watermark": ms(soon), "seq": 2}}]}]})
    message.refresh_from_db()
    assert message.state == "read"


def test_handoff_replies_publicly_then_privately_to_the_same_comment(deliver, graph, agent):
    graph.expect_request(f"/v23.0/{COMMENT}/comments", method="POST").respond_with_json({"id": "901097836652708_777"})
    graph.expect_request("/v23.0/me/messages", method="POST").respond_with_json({"recipient_id": PSID, "message_id": "m_pr-1"})
    deliver(comment("Your product broke after a day!", at=datetime.now(timezone.utc) - timedelta(hours=2)))
    ticket = Ticket.objects.get()
    public, private = ticket_handoff(ticket=ticket, user=agent, private_text="Could you send us your order number?")
    for message in (public, private):
        assert outbound_send(outbound_id=message.outbound.pk).status == "sent"
    (p1, f1), (p2, f2) = sent_forms(graph)
    assert (p1, f1["message"]) == (f"/v23.0/{COMMENT}/comments", "Sorry to hear that — we've sent you a private message.")
    assert p2 == "/v23.0/me/messages" and json.loads(f2["recipient"]) == {"comment_id": COMMENT}
    assert json.loads(f2["message"]) == {"text": "Could you send us your order number?"}
    ticket.refresh_from_db()
    assert ticket.handoff_at is not None
    assert set(OutboundMessage.objects.values_list("in_reply_to", flat=True)) == {COMMENT}
    assert {m.external_id for m in (public, private) if m.refresh_from_db() is None} == {"901097836652708_777", "m_pr-1"}


# --- a reply whose sender died mid-send ------------------------------------------------------


def interrupted_reply(deliver, agent, route: str) -> tuple[Message, str, str]:  # type: ignore[no-untyped-def]
    """A reply on a comment or in Messenger whose sender died mid-send; the path it is posted to and the one
    the lookup reads."""
    now = datetime.now(timezone.utc)
    if route == "comment":
        deliver(comment("My order arrived broken", at=now - timedelta(minutes=5)))
        read, post = f"/v23.0/{COMMENT}/comments", f"/v23.0/{COMMENT}/comments"
    else:
        deliver(messenger("Where is my parcel?", mid="m_in-9", at=now - timedelta(minutes=5)))
        read, post = f"/v23.0/{CONVERSATION}/messages", "/v23.0/me/messages"
    message = reply_create(ticket=Ticket.objects.get(), user=agent, text="It left the depot today.")
    OutboundMessage.objects.filter(message=message).update(status="sending", claimed_at=now - timedelta(hours=1))
    assert outbox_due_ids() == [message.outbound.pk]
    assert OutboundMessage.objects.get(message=message).error_code == "interrupted"
    return message, read, post


def answer_lookups(graph, read: str, *items: dict) -> None:  # type: ignore[no-untyped-def]
    graph.expect_request(f"/v23.0/{PAGE}/conversations", method="GET").respond_with_json({"data": [{"id": CONVERSATION}]})
    serve_pages(graph, read, list(items))


def posts(graph, path: str) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for request, _ in graph.log if request.method == "POST" and request.path == path)


@pytest.mark.parametrize("route", ["comment", "messenger"])
def test_an_interrupted_reply_meta_already_has_is_recorded_not_sent_again(deliver, graph, agent, route):
    message, read, post = interrupted_reply(deliver, agent, route)
    answer_lookups(graph, read, by_page("903438993085259_50" if route == "comment" else "m_out-50",
                                        "It left the depot today.", datetime.now(timezone.utc)))
    graph.expect_request(post, method="POST").respond_with_json({"id": "never", "message_id": "never"})
    assert outbound_send(outbound_id=message.outbound.pk).status == "reconciled"
    assert posts(graph, post) == 0
    message.refresh_from_db()
    assert (message.state, message.external_id) == ("sent", "903438993085259_50" if route == "comment" else "m_out-50")


@pytest.mark.parametrize("route", ["comment", "messenger"])
def test_an_interrupted_reply_meta_does_not_have_is_sent_once(deliver, graph, agent, route):
    message, read, post = interrupted_reply(deliver, agent, route)
    answer_lookups(graph, read, by_page("903438993085259_51", "Anything else?", datetime.now(timezone.utc)))
    graph.expect_request(post, method="POST").respond_with_json({"id": "903438993085259_52", "recipient_id": PSID,
                                                                "message_id": "m_out-52"})
    assert outbound_send(outbound_id=message.outbound.pk).status == "sent"
    assert posts(graph, post) == 1
    message.refresh_from_db()
    assert message.external_id == ("903438993085259_52" if route == "comment" else "m_out-52")


@pytest.mark.parametrize("route", ["comment", "messenger"])
@pytest.mark.parametrize(
    ("status", "body"),
    [(400, graph_error(4, "Application request limit reached")),
     (503, graph_error(2, "An unexpected error has occurred.", transient=True))],
    ids=["rate-limited", "5xx"],
)
def test_an_interrupted_reply_waits_while_the_lookup_fails(deliver, graph, agent, route, status, body):
    message, read, post = interrupted_reply(deliver, agent, route)
    for path in (f"/v23.0/{PAGE}/conversations", read):
        graph.expect_request(path, method="GET").respond_with_data(body, status=status, content_type="application/json")
    graph.expect_request(post, method="POST").respond_with_json({"id": "never", "message_id": "never"})
    assert outbound_send(outbound_id=message.outbound.pk).status == "retry"
    assert posts(graph, post) == 0
    outbound = OutboundMessage.objects.get(message=message)
    assert (outbound.status, outbound.error_code) == ("queued", "interrupted")
    assert "Graph error" in outbound.last_error


@pytest.mark.parametrize("route", ["comment", "messenger"])
def test_a_post_whose_answer_was_lost_is_looked_up_before_the_retry(deliver, graph, agent, route):
    """Graph failed with a 5xx after posting: the retry finds the reply instead of sending it twice."""
    message, read, post = interrupted_reply(deliver, agent, route)
    OutboundMessage.objects.filter(message=message).update(error_code="")  # a first, ordinary attempt
    graph.expect_request(post, method="POST").respond_with_data(
        graph_error(2, "An unexpected error has occurred.", transient=True), status=500, content_type="application/json")
    assert outbound_send(outbound_id=message.outbound.pk).status == "retry"
    outbound = OutboundMessage.objects.get(message=message)
    assert (outbound.status, outbound.error_code) == ("queued", "interrupted")

    graph.clear_all_handlers()
    answer_lookups(graph, read, by_page("903438993085259_53" if route == "comment" else "m_out-53",
                                        "It left the depot today.", datetime.now(timezone.utc)))
    graph.expect_request(post, method="POST").respond_with_json({"id": "never", "message_id": "never"})
    OutboundMessage.objects.filter(pk=outbound.pk).update(next_attempt_at=None)
    assert outbound_send(outbound_id=outbound.pk).status == "reconciled"
    assert posts(graph, post) == 1  # the first, lost-answer POST only
