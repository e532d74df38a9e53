"""delivery_find() against the fake X API: was an interrupted reply already posted?"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from channels_plugins.twitter.lookup import comparable
from omnidesk.plugins.contract import (
    IdentityKind,
    IdentityRef,
    OutboundReply,
    PermanentSendError,
    RetryableSendError,
)

from .fakex import CUSTOMER_ID, OWN_ID, FakeX, as_x_shows, timeline_noise, too_many_requests

TWEET = "1578516295611748353"  # the customer's tweet being answered
TEXT = "Sorry & thanks: the fix is live, see https://status.example.com/incidents/42 for details."
SINCE = datetime.now(timezone.utc) - timedelta(minutes=10)


def reply(**changes) -> OutboundReply:  # type: ignore[no-untyped-def]
    base = dict(idempotency_key="r1", to=IdentityRef(IdentityKind.TWITTER, CUSTOMER_ID), text=TEXT,
                visibility="public", ticket_ref=1, in_reply_to=TWEET)
    return OutboundReply(**{**base, **changes})  # type: ignore[arg-type]


def test_what_x_does_to_a_text_is_undone_before_comparing() -> None:
    shown = as_x_shows("1", TEXT, in_reply_to=TWEET)["text"]
    assert shown.startswith("@ada_rides Sorry &amp; thanks") and "https://t.co/" in shown
    assert comparable(shown) == comparable(TEXT)
    assert comparable("@a @b  see example.com/x\n now") == comparable("see https://t.co/AbC now")
    assert comparable("the fix is live") != comparable("the fix is not live")


def test_a_posted_reply_is_found_among_the_accounts_tweets(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    ours = as_x_shows("1590000000000000001", TEXT, in_reply_to=TWEET)
    fake_x.own_tweets(timeline_noise()[:3] + [ours] + timeline_noise()[3:])
    delivery = make_plugin().delivery_find(reply(), since=SINCE)
    assert delivery is not None and delivery.external_id == "1590000000000000001"
    assert delivery.sent_at is not None and delivery.sent_at > SINCE
    asked = fake_x.requests[0]
    assert asked.path == f"/2/users/{OWN_ID}/tweets" and asked.headers["Authorization"].startswith("OAuth ")
    start = datetime.fromisoformat(asked.args["start_time"])
    assert SINCE - timedelta(minutes=6) < start < SINCE  # since, less a margin for X's clock
    assert "referenced_tweets" in asked.args["tweet.fields"] and "created_at" in asked.args["tweet.fields"]
    assert fake_x.sent("/2/tweets") == []


@pytest.mark.parametrize(
    "shown",
    [
        as_x_shows("1590000000000000002", TEXT, in_reply_to="1578516295611748000"),  # answers another tweet
        as_x_shows("1590000000000000003", "Sorry, the fix is live.", in_reply_to=TWEET),  # another text
    ],
    ids=["another-tweet", "another-text"],
)
def test_a_reply_that_is_not_there_is_not_found(fake_x: FakeX, make_plugin, shown) -> None:  # type: ignore[no-untyped-def]
    fake_x.own_tweets([shown] + timeline_noise())
    assert make_plugin().delivery_find(reply(), since=SINCE) is None


def test_pages_are_followed_back_to_since(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    ours = as_x_shows("1590000000000000004", TEXT, in_reply_to=TWEET)
    fake_x.own_tweets(timeline_noise(), [ours])
    assert make_plugin().delivery_find(reply(), since=SINCE).external_id == "1590000000000000004"
    assert [r.args.get("pagination_token") for r in fake_x.requests] == [None, "page-1"]


def test_an_interrupted_thread_is_found_whole_or_reported(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    plugin = make_plugin(split_long_replies=True)
    text = " ".join(f"Step {n}: restart the router and wait a minute before trying again." for n in range(1, 10))
    parts = plugin._public_parts(text)
    first = as_x_shows("1590000000000000010", parts[0], in_reply_to=TWEET)
    rest = [as_x_shows(f"159000000000000001{n}", part, in_reply_to=f"159000000000000001{n - 1}")
            for n, part in enumerate(parts[1:], 1)]
    fake_x.own_tweets(list(reversed([first, *rest])))
    assert plugin.delivery_find(reply(text=text), since=SINCE).external_id == "1590000000000000010"
    fake_x.server.clear_all_handlers()
    fake_x.own_tweets([first])
    with pytest.raises(PermanentSendError, match="stopped after part 1 of 3"):
        plugin.delivery_find(reply(text=text), since=SINCE)


def test_a_dm_is_found_in_the_conversation_with_that_person(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.dms_with()
    delivery = make_plugin().delivery_find(reply(visibility="private", text="Testing 2"), since=SINCE)
    assert delivery is not None and delivery.external_id == "1585800613752881156"  # the recorded DM
    assert delivery.thread_key == f"dm:{CUSTOMER_ID}-{OWN_ID}"
    asked = fake_x.requests[0]
    assert asked.path == f"/2/dm_conversations/with/{CUSTOMER_ID}/dm_events"
    assert "sender_id" in asked.args["dm_event.fields"] and asked.args["event_types"] == "MessageCreate"


def test_a_dm_older_than_since_or_with_another_text_is_not_ours(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.dms_with(at=SINCE - timedelta(hours=1))
    assert make_plugin().delivery_find(reply(visibility="private", text="Testing 2"), since=SINCE) is None
    fake_x.server.clear_all_handlers()
    fake_x.dms_with()
    assert make_plugin().delivery_find(reply(visibility="private", text="Testing 3"), since=SINCE) is None


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("visibility", ["public", "private"])
def test_a_failing_lookup_is_retryable_and_posts_nothing(fake_x: FakeX, make_plugin, status, visibility) -> None:  # type: ignore[no-untyped-def]
    body, headers = too_many_requests(reset_in_s=90)
    if status == 503:
        body, headers = {"title": "Service Unavailable", "detail": "Service Unavailable", "status": 503}, {}
    fake_x.own_tweets(status=status, body=body, headers=headers)
    fake_x.dms_with(status=status, body=body, headers=headers)
    with pytest.raises(RetryableSendError) as caught:
        make_plugin().delivery_find(reply(visibility=visibility), since=SINCE)
    if status == 429:
        assert 60 < caught.value.retry_after <= 91
    assert [r.method for r in fake_x.requests] == ["GET"]
