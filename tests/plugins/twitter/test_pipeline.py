"""The X channel through the whole desk: webhook view, poller, ingest, outbox — against the fake X API."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from omnidesk.customers.models import Customer, Identity
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.polling import account_poll, pull_accounts
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.contract import ReplyTooLong
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.services import channel_account_save
from omnidesk.tickets.models import Message, OutboundMessage, Ticket
from omnidesk.tickets.outbox import outbound_send, outbox_due_ids
from omnidesk.tickets.replies import reply_create, ticket_handoff

from .conftest import SECRETS, account_settings
from .fakex import CUSTOMER_ID, FakeX, as_x_shows, recorded, timeline_noise, too_many_requests, unauthorized

FIXTURES = Path(__file__).parent / "fixtures"
TWEET = "1990712204871446529"  # the customer's complaint in mention__account_activity.json

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user("alice")


def deliver(post_x_hook, name: str) -> InboundEvent:  # type: ignore[no-untyped-def]
    response = post_x_hook("acme-x", (FIXTURES / name).read_bytes())
    assert response.status_code == 200, response.content
    event = InboundEvent.objects.get(pk=response.json()["event"])
    inbound_events_apply(event_ids=[event.pk])
    event.refresh_from_db()
    return event


def send_all(message_ids: list[int]) -> list[str]:
    return [outbound_send(outbound_id=OutboundMessage.objects.get(message_id=pk).pk).status for pk in message_ids]


def test_crc_get_is_answered_by_the_view(client, twitter_account) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/hooks/acme-x/", {"crc_token": "9b4507b3-9040-4669-9ca3-6b94edb50553"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json()["response_token"].startswith("sha256=")
    assert InboundEvent.objects.count() == 0


def test_bad_signature_is_refused_and_nothing_stored(post_x_hook, twitter_account) -> None:  # type: ignore[no-untyped-def]
    body = (FIXTURES / "mention__account_activity.json").read_bytes()
    assert post_x_hook("acme-x", body, signature="sha256=bm9wZQ==").status_code == 401
    assert post_x_hook("acme-x", body, signature="").status_code == 401
    assert InboundEvent.objects.count() == 0


def test_mention_and_dm_from_one_person_are_one_customer_with_reach(post_x_hook, twitter_account) -> None:  # type: ignore[no-untyped-def]
    event = deliver(post_x_hook, "mention__account_activity.json")
    assert event.status == "processed", event.error
    tweet = Message.objects.get(external_id=TWEET)
    assert tweet.visibility == "public" and tweet.reach_followers == 1532 and tweet.reach_verified is False
    assert "support chat is down https://status.example.com/chat" in tweet.text
    deliver(post_x_hook, "direct_message__account_activity.json")
    dm = Message.objects.get(external_id="1990715842301980677")
    assert dm.visibility == "private" and dm.thread_key.startswith("dm:")
    assert Customer.objects.count() == 1 and dm.ticket.customer_id == tweet.ticket.customer_id
    identity = Identity.objects.get(kind="twitter", value=CUSTOMER_ID)
    assert identity.followers == 1532 and "@ada_rides" in identity.display_name
    # the follow-up reply tweet threads onto the same ticket, and updates reach on the identity
    deliver(post_x_hook, "mention__account_activity_extended_reply.json")
    follow_up = Message.objects.get(external_id="1990717676041523201")
    assert follow_up.ticket_id == tweet.ticket_id and follow_up.reach_followers == 1540
    identity.refresh_from_db()
    assert identity.followers == 1540
    # likes, follows, typing, our own tweets and retweets are recorded, never tickets
    tickets = Ticket.objects.count()
    for name in ("favorite__account_activity.json", "follow__account_activity.json", "typing__account_activity.json",
                 "mention__account_activity_own_tweet.json", "retweet__account_activity.json"):
        assert deliver(post_x_hook, name).status == "ignored"
    assert Ticket.objects.count() == tickets


def test_handoff_public_ack_then_dm_on_the_same_ticket(post_x_hook, twitter_account, fake_x: FakeX, agent) -> None:  # type: ignore[no-untyped-def]
    deliver(post_x_hook, "mention__account_activity.json")
    ticket = Message.objects.get(external_id=TWEET).ticket
    fake_x.create_tweet()
    fake_x.create_dm()
    ack, private = ticket_handoff(ticket=ticket, user=agent, private_text="Hi Ada, could you send us the tracking number?")
    assert send_all([ack.pk, private.pk]) == ["sent", "sent"]
    assert fake_x.sent("/2/tweets") == [
        {"text": "Sorry about this — we've sent you a DM.", "reply": {"in_reply_to_tweet_id": TWEET}}
    ]
    assert fake_x.sent(f"/dm_conversations/with/{CUSTOMER_ID}/messages") == [
        {"text": "Hi Ada, could you send us the tracking number?"}
    ]
    ticket.refresh_from_db()
    ack.refresh_from_db()
    private.refresh_from_db()
    assert ticket.handoff_at is not None and ticket.first_response_at is not None
    assert ack.ticket_id == private.ticket_id == ticket.pk
    assert ack.visibility == "public" and ack.external_id == "1456012973835788293"
    dm = recorded("test_manage_and_lookup_direct_messages", "POST", "/dm_conversations/with/")["body"]["data"]
    assert private.visibility == "private" and private.external_id == dm["dm_event_id"]
    assert private.thread_key == f"dm:{dm['dm_conversation_id']}"


def test_customer_dm_after_handoff_continues_the_ticket(post_x_hook, twitter_account, fake_x: FakeX, agent) -> None:  # type: ignore[no-untyped-def]
    deliver(post_x_hook, "mention__account_activity.json")
    ticket = Message.objects.get(external_id=TWEET).ticket
    fake_x.create_tweet()
    fake_x.create_dm(body={"data": {"dm_conversation_id": f"{CUSTOMER_ID}-1072250532645998596", "dm_event_id": "1990716000000000001"}})
    ack, private = ticket_handoff(ticket=ticket, user=agent, private_text="Could you DM us the tracking number?")
    send_all([ack.pk, private.pk])
    # the DM's Delivery.thread_key (dm:<conversation>) links the DM conversation to this ticket
    deliver(post_x_hook, "direct_message__account_activity.json")
    assert Message.objects.get(external_id="1990715842301980677").ticket_id == ticket.pk


def test_polling_stores_pages_makes_tickets_and_dedupes_repolls(twitter_account, fake_x: FakeX) -> None:  # type: ignore[no-untyped-def]
    fake_x.mentions()
    fake_x.dm_events()
    report = account_poll(account=twitter_account)
    assert report.error == "" and report.stored == 2
    inbound_events_apply(event_ids=report.event_ids)
    assert Message.objects.filter(account=twitter_account, visibility="public").count() == 10
    assert Message.objects.filter(account=twitter_account, visibility="private").count() == 1  # one DM in, one ours
    assert Customer.objects.count() == 3
    big = Message.objects.filter(reach_followers=570000).first()
    assert big is not None and big.reach_verified is True
    # the fake ignores since_id and answers the same pages: nothing is stored or made twice
    again = account_poll(account=twitter_account)
    # the mentions page is a duplicate event; the DM page's newest event is in the cursor: not even stored
    assert again.stored == 0 and again.duplicates == 1
    assert fake_x.requests[-2].args["since_id"] == "1578516295611748353"
    assert Message.objects.filter(account=twitter_account).count() == 11


def test_rate_limit_pauses_polling_until_the_reset(twitter_account, fake_x: FakeX) -> None:  # type: ignore[no-untyped-def]
    body, headers = too_many_requests(reset_in_s=300)
    fake_x.mentions(body, status=429, headers=headers)
    report = account_poll(account=twitter_account)
    assert report.error == "" and report.stored == 0 and 250 < report.next_poll_in_s <= 301
    seen = len(fake_x.requests)
    assert 250 < account_poll(account=twitter_account).next_poll_in_s <= 301
    assert len(fake_x.requests) == seen  # waited: X was not asked again


def test_revoked_token_stops_polling_holds_replies_and_resumes_once_fixed(
    twitter_account, fake_x: FakeX, post_x_hook, agent
) -> None:  # type: ignore[no-untyped-def]
    deliver(post_x_hook, "mention__account_activity.json")
    ticket = Message.objects.get(external_id=TWEET).ticket
    fake_x.mentions(unauthorized(), status=401)
    report = account_poll(account=twitter_account)
    twitter_account.refresh_from_db()
    assert "401" in report.error and twitter_account.needs_reauthorization
    assert twitter_account not in pull_accounts()  # polling stops
    message = reply_create(ticket=ticket, user=agent, text="We are looking into it.")
    assert send_all([message.pk]) == ["waiting-for-reauthorization"]
    assert fake_x.sent("/2/tweets") == []
    # re-authorized: new tokens saved and the flag cleared (the admin does this today by hand)
    channel_account_save(kind="twitter", slug="acme-x", name="Acme on X", config=account_settings(fake_x),
                         secrets={**SECRETS, "access_token": "new-token"}, account=twitter_account,
                         default_group_id=twitter_account.default_group_id)
    ChannelAccount.objects.filter(pk=twitter_account.pk).update(needs_reauthorization=False)
    fake_x.server.clear_all_handlers()
    fake_x.create_tweet()
    assert send_all([message.pk]) == ["sent"]
    assert fake_x.sent("/2/tweets")[0]["reply"] == {"in_reply_to_tweet_id": TWEET}
    assert twitter_account in pull_accounts()


def test_too_long_public_reply_is_refused_with_the_count(post_x_hook, twitter_account, agent) -> None:  # type: ignore[no-untyped-def]
    deliver(post_x_hook, "mention__account_activity.json")
    ticket = Message.objects.get(external_id=TWEET).ticket
    text = "Sorry! " + "故障" * 140  # 7 + 280*2 weighted
    with pytest.raises(ReplyTooLong) as caught:
        reply_create(ticket=ticket, user=agent, text=text)
    assert caught.value.length == 567 and caught.value.limit == 280 and "567" in caught.value.message
    assert not Message.objects.filter(direction="outbound").exists()


def test_opted_in_account_posts_a_long_reply_as_a_numbered_thread(post_x_hook, twitter_account, fake_x: FakeX, agent) -> None:  # type: ignore[no-untyped-def]
    ChannelAccount.objects.filter(pk=twitter_account.pk).update(
        config={**twitter_account.config, "split_long_replies": True}
    )
    deliver(post_x_hook, "mention__account_activity.json")
    ticket = Message.objects.get(external_id=TWEET).ticket
    fake_x.create_tweet()
    text = " ".join(["We have found your parcel at the depot and it goes out again tomorrow morning."] * 6)
    message = reply_create(ticket=ticket, user=agent, text=text)
    assert send_all([message.pk]) == ["sent"]
    sent = fake_x.sent("/2/tweets")
    assert len(sent) == 2 and sent[0]["text"].endswith("(1/2)") and sent[1]["text"].endswith("(2/2)")
    assert sent[0]["reply"]["in_reply_to_tweet_id"] == TWEET
    message.refresh_from_db()
    assert message.external_id == "1456012973835788293"  # the thread's first tweet


def test_read_receipt_marks_our_dms_read(post_x_hook, twitter_account, fake_x: FakeX, agent) -> None:  # type: ignore[no-untyped-def]
    deliver(post_x_hook, "direct_message__account_activity.json")
    ticket = Message.objects.get(external_id="1990715842301980677").ticket
    fake_x.create_dm()
    message = reply_create(ticket=ticket, user=agent, text="Thanks, checking now.")
    send_all([message.pk])
    Message.objects.filter(pk=message.pk).update(sent_at=Message.objects.get(pk=message.pk).sent_at.replace(year=2025, month=11, day=18, hour=8))
    body = json.loads((FIXTURES / "read__account_activity.json").read_text())
    body["direct_message_mark_read_events"][0]["created_timestamp"] = str(int(time.time() * 1000))
    response = post_x_hook("acme-x", json.dumps(body).encode())
    inbound_events_apply(event_ids=[response.json()["event"]])
    message.refresh_from_db()
    assert message.state == "read"


# --- a reply whose sender died mid-send ------------------------------------------------------


def interrupted(message: Message) -> OutboundMessage:
    """The reply's sender died mid-send: its claim went stale and the outbox sweep requeued it."""
    OutboundMessage.objects.filter(message=message).update(status="sending", claimed_at=timezone.now() - timedelta(hours=1))
    assert outbox_due_ids() == [message.outbound.pk]
    outbound = OutboundMessage.objects.get(message=message)
    assert (outbound.status, outbound.error_code) == ("queued", "interrupted")
    return outbound


def interrupted_reply(post_x_hook, agent, visibility: str) -> tuple[Message, str]:  # type: ignore[no-untyped-def]
    """A queued public reply to the mention, or DM to the customer, caught mid-send; and where X posts it."""
    if visibility == "public":
        deliver(post_x_hook, "mention__account_activity.json")
        message = reply_create(ticket=Message.objects.get(external_id=TWEET).ticket, user=agent,
                               text="Fixed now & sorry: https://status.example.com/chat")
        return message, "/2/tweets"
    deliver(post_x_hook, "direct_message__account_activity.json")
    message = reply_create(ticket=Message.objects.get(external_id="1990715842301980677").ticket, user=agent,
                           text="Testing 2")  # the text of the newest recorded DM of ours
    return message, f"/dm_conversations/with/{CUSTOMER_ID}/messages"


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_an_interrupted_reply_x_already_has_is_recorded_not_posted_again(
    post_x_hook, twitter_account, fake_x: FakeX, agent, visibility
) -> None:  # type: ignore[no-untyped-def]
    message, post_path = interrupted_reply(post_x_hook, agent, visibility)
    fake_x.own_tweets([as_x_shows("1590000000000000001", message.text, in_reply_to=TWEET)] + timeline_noise())
    fake_x.dms_with()
    fake_x.create_tweet()
    fake_x.create_dm()
    outbound = interrupted(message)
    assert outbound_send(outbound_id=outbound.pk).status == "reconciled"
    assert fake_x.sent(post_path) == []
    message.refresh_from_db()
    expected = "1590000000000000001" if visibility == "public" else "1585800613752881156"
    assert (message.state, message.external_id) == ("sent", expected)
    assert OutboundMessage.objects.get(pk=outbound.pk).status == "sent"
    assert "not sent again" in message.ticket.events.get(action="reply_sent").note


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_an_interrupted_reply_x_does_not_have_is_posted_once(
    post_x_hook, twitter_account, fake_x: FakeX, agent, visibility
) -> None:  # type: ignore[no-untyped-def]
    message, post_path = interrupted_reply(post_x_hook, agent, visibility)
    Message.objects.filter(pk=message.pk).update(text=message.text + " (v2)")  # not what X holds
    fake_x.own_tweets(timeline_noise())
    fake_x.dms_with()
    fake_x.create_tweet()
    fake_x.create_dm()
    assert outbound_send(outbound_id=interrupted(message).pk).status == "sent"
    assert len(fake_x.sent(post_path)) == 1
    assert [r.method for r in fake_x.requests] == ["GET", "POST"]


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("visibility", ["public", "private"])
def test_an_interrupted_reply_waits_while_the_lookup_fails(
    post_x_hook, twitter_account, fake_x: FakeX, agent, visibility, status
) -> None:  # type: ignore[no-untyped-def]
    message, post_path = interrupted_reply(post_x_hook, agent, visibility)
    body, headers = too_many_requests(reset_in_s=90)
    if status == 503:
        body, headers = {"title": "Service Unavailable", "detail": "Service Unavailable", "status": 503}, {}
    fake_x.own_tweets(status=status, body=body, headers=headers)
    fake_x.dms_with(status=status, body=body, headers=headers)
    fake_x.create_tweet()
    fake_x.create_dm()
    outbound = interrupted(message)
    outcome = outbound_send(outbound_id=outbound.pk)
    assert outcome.status == "retry" and (status != 429 or outcome.retry_in_s > 60)
    assert fake_x.sent(post_path) == []
    outbound.refresh_from_db()
    assert (outbound.status, outbound.error_code) == ("queued", "interrupted")  # still asked about next time
    assert str(status) in outbound.last_error or "rate limit" in outbound.last_error
    # X answers again and has the reply: recorded, never posted
    fake_x.server.clear_all_handlers()
    fake_x.own_tweets([as_x_shows("1590000000000000001", message.text, in_reply_to=TWEET)])
    fake_x.dms_with()
    fake_x.create_tweet()
    fake_x.create_dm()
    OutboundMessage.objects.filter(pk=outbound.pk).update(next_attempt_at=None)
    assert outbound_send(outbound_id=outbound.pk).status == "reconciled"
    assert fake_x.sent(post_path) == []


def test_a_post_whose_answer_was_lost_is_looked_up_before_the_retry(
    post_x_hook, twitter_account, fake_x: FakeX, agent
) -> None:  # type: ignore[no-untyped-def]
    """X answered 503 after posting: the retry finds the tweet instead of posting it twice."""
    message, post_path = interrupted_reply(post_x_hook, agent, "public")
    fake_x.create_tweet(status=503, body={"title": "Service Unavailable", "detail": "Service Unavailable", "status": 503})
    outbound = OutboundMessage.objects.get(message=message)
    assert outbound_send(outbound_id=outbound.pk).status == "retry"
    outbound.refresh_from_db()
    assert (outbound.status, outbound.error_code) == ("queued", "interrupted")

    fake_x.server.clear_all_handlers()
    fake_x.own_tweets([as_x_shows("1590000000000000001", message.text, in_reply_to=TWEET)])
    fake_x.create_tweet()
    OutboundMessage.objects.filter(pk=outbound.pk).update(next_attempt_at=None)
    assert outbound_send(outbound_id=outbound.pk).status == "reconciled"
    assert len(fake_x.sent(post_path)) == 1  # the first, lost-answer POST only
    message.refresh_from_db()
    assert (message.state, message.external_id) == ("sent", "1590000000000000001")


def test_a_refused_post_is_retried_without_a_lookup(post_x_hook, twitter_account, fake_x: FakeX, agent) -> None:  # type: ignore[no-untyped-def]
    """A 429 means X took nothing: the retry posts straight away."""
    message, post_path = interrupted_reply(post_x_hook, agent, "public")
    body, headers = too_many_requests(reset_in_s=1)
    fake_x.create_tweet(status=429, body=body, headers=headers)
    outbound = OutboundMessage.objects.get(message=message)
    assert outbound_send(outbound_id=outbound.pk).status == "retry"
    outbound.refresh_from_db()
    assert outbound.error_code != "interrupted"
    fake_x.server.clear_all_handlers()
    fake_x.create_tweet()
    OutboundMessage.objects.filter(pk=outbound.pk).update(next_attempt_at=None)
    assert outbound_send(outbound_id=outbound.pk).status == "sent"
    assert [r.method for r in fake_x.requests] == ["POST", "POST"]
