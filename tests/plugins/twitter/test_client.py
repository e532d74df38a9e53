"""fetch() and send() against the fake X API: tweepy's real HTTP code, recorded X answers."""

from __future__ import annotations

import json
import time

import pytest

from channels_plugins.twitter.adapter import TwitterChannel
from omnidesk.plugins.contract import (
    AuthorizationRequired,
    IdentityKind,
    IdentityRef,
    InboundMessage,
    Invalid,
    OutboundReply,
    PermanentSendError,
    RetryableSendError,
)

from .fakex import CUSTOMER_ID, OWN_ID, FakeX, recorded, too_many_requests, unauthorized

TWEET = "1578516295611748353"  # newest of the recorded mentions


def reply(**changes) -> OutboundReply:  # type: ignore[no-untyped-def]
    base = dict(idempotency_key="r1", to=IdentityRef(IdentityKind.TWITTER, CUSTOMER_ID), text="We are on it.",
                visibility="public", ticket_ref=1, in_reply_to=TWEET)
    return OutboundReply(**{**base, **changes})  # type: ignore[arg-type]


# --- polling ------------------------------------------------------------------------------


def test_first_poll_reads_mentions_and_dms_and_sets_since_id(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.mentions()
    fake_x.dm_events()
    result = make_plugin().fetch(None)
    assert [i.source_key for i in result.items] == [
        f"mentions:{TWEET}:1578516107798884353", "dm_events:1585800613752881156"
    ]
    assert json.loads(result.cursor) == {"mentions_since_id": TWEET, "dm_newest_id": "1585800613752881156"}
    assert result.retry_after is None
    mentions = fake_x.requests[0]
    assert mentions.path == f"/2/users/{OWN_ID}/mentions" and "since_id" not in mentions.args
    assert "author_id" in mentions.args["expansions"] and "public_metrics" in mentions.args["user.fields"]
    assert "conversation_id" in mentions.args["tweet.fields"]
    assert mentions.headers["Authorization"].startswith("OAuth ")  # user context, OAuth 1.0a
    assert "sender_id" in fake_x.requests[1].args["dm_event.fields"]
    items = make_plugin().parse(result.items[0])
    assert sum(isinstance(i, InboundMessage) for i in items) == 10


def test_next_poll_asks_since_the_newest_and_keeps_the_cursor_when_nothing_is_new(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.mentions({"meta": {"result_count": 0}})
    fake_x.dm_events()
    cursor = json.dumps({"dm_newest_id": "1585800613752881156", "mentions_since_id": TWEET}, sort_keys=True)
    result = make_plugin().fetch(cursor)
    assert fake_x.requests[0].args["since_id"] == TWEET
    assert result.items == () and result.cursor == cursor


def test_mentions_are_paged_and_the_place_is_kept_across_polls(fake_x: FakeX, make_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("channels_plugins.twitter.adapter.MAX_PAGES", 1)
    page = recorded("test_client_get_users_mentions", "GET", "/mentions")["body"]  # has meta.next_token
    fake_x.mentions(page, enriched=False)
    plugin = make_plugin(poll_dms=False)
    first = plugin.fetch(json.dumps({"mentions_since_id": "1"}))
    state = json.loads(first.cursor)
    assert state["mentions_since_id"] == "1" and state["mentions_next_token"] == page["meta"]["next_token"]
    fake_x.server.clear_all_handlers()
    fake_x.mentions({"data": page["data"][-1:], "meta": {"result_count": 1, "newest_id": "9", "oldest_id": "9"}})
    second = plugin.fetch(first.cursor)
    assert fake_x.requests[-1].args["pagination_token"] == page["meta"]["next_token"]
    assert json.loads(second.cursor) == {"mentions_since_id": TWEET}  # the newest of the whole burst


def test_rate_limited_poll_backs_off_with_the_cursor_unchanged(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    body, headers = too_many_requests(reset_in_s=120)
    fake_x.mentions(body, status=429, headers=headers)
    cursor = json.dumps({"mentions_since_id": TWEET})
    result = make_plugin().fetch(cursor)
    assert result.items == () and result.cursor == cursor
    assert 100 < result.retry_after <= 121
    assert len(fake_x.requests) == 1  # no DM request after a 429


def test_last_request_of_the_window_stores_the_page_then_waits(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.mentions(headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(time.time()) + 300)})
    result = make_plugin().fetch(None)
    assert len(result.items) == 1 and json.loads(result.cursor)["mentions_since_id"] == TWEET
    assert 250 < result.retry_after <= 301
    assert len(fake_x.requests) == 1


def test_revoked_token_raises_authorization_required(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.mentions(unauthorized(), status=401)
    with pytest.raises(AuthorizationRequired, match="401"):
        make_plugin().fetch(None)


def test_polling_switched_off_never_calls_x(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    result = make_plugin(poll_enabled=False).fetch("abc")
    assert result.items == () and result.cursor == "abc" and result.retry_after >= 600
    assert fake_x.requests == []


def test_recorded_pages_without_expansions_give_invalid_items_not_crashes(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.mentions(enriched=False)
    fake_x.dm_events(enriched=False)
    plugin = make_plugin()
    result = plugin.fetch(None)
    items = [i for raw in result.items for i in plugin.parse(raw)]
    assert items and all(isinstance(i, Invalid) for i in items)


# --- sending ------------------------------------------------------------------------------


def test_public_reply_is_a_tweet_in_reply_to_the_customers(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.create_tweet()
    delivery = make_plugin().send(reply())
    assert delivery.external_id == "1456012973835788293"  # the recorded id
    assert fake_x.sent("/2/tweets") == [{"text": "We are on it.", "reply": {"in_reply_to_tweet_id": TWEET}}]


def test_private_reply_is_a_dm_to_the_customer(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.create_dm()
    delivery = make_plugin().send(reply(visibility="private", text="Could you send us your order number?"))
    rec = recorded("test_manage_and_lookup_direct_messages", "POST", "/dm_conversations/with/")["body"]["data"]
    assert delivery.external_id == rec["dm_event_id"]
    assert delivery.thread_key == f"dm:{rec['dm_conversation_id']}"
    assert fake_x.sent(f"/dm_conversations/with/{CUSTOMER_ID}/messages") == [{"text": "Could you send us your order number?"}]


def test_long_reply_split_into_a_numbered_thread_when_opted_in(fake_x: FakeX, make_plugin) -> None:  # type: ignore[no-untyped-def]
    fake_x.create_tweet()
    text = " ".join(f"Step {n}: restart the router and wait a minute before trying again." for n in range(1, 10))
    delivery = make_plugin(split_long_replies=True).send(reply(text=text))
    sent = fake_x.sent("/2/tweets")
    assert len(sent) == 3 and [s["text"][-5:] for s in sent] == ["(1/3)", "(2/3)", "(3/3)"]
    # each part answers the one before; the first answers the customer
    assert [s["reply"]["in_reply_to_tweet_id"] for s in sent] == [TWEET, "1456012973835788293", "1456012973835788294"]
    assert delivery.external_id == "1456012973835788293"


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (429, None, RetryableSendError, "rate limit"),
        (503, {"title": "Service Unavailable", "detail": "Service Unavailable", "status": 503}, RetryableSendError, "503"),
        (401, unauthorized(), AuthorizationRequired, "401"),
        (403, {"detail": "You are not allowed to create a Tweet with duplicate content.", "status": 403,
               "title": "Forbidden", "type": "about:blank"}, PermanentSendError, "duplicate content"),
        (403, {"title": "Unsupported Authentication", "detail": "Authenticating with OAuth 2.0 Application-Only is "
               "forbidden for this endpoint.", "status": 403}, AuthorizationRequired, "403"),
        (400, {"errors": [{"message": "The `text` field is invalid"}], "title": "Invalid Request", "status": 400},
         PermanentSendError, "invalid"),
    ],
)
def test_send_errors_are_typed(fake_x: FakeX, make_plugin, status, body, error, text) -> None:  # type: ignore[no-untyped-def]
    headers = {}
    if status == 429:
        body, headers = too_many_requests(reset_in_s=90)
    fake_x.create_tweet(status=status, body=body, headers=headers)
    with pytest.raises(error, match=text) as caught:
        make_plugin().send(reply())
    if status == 429:
        assert 60 < caught.value.retry_after <= 91
    if error is PermanentSendError:
        assert not isinstance(caught.value, RetryableSendError)


def test_x_unreachable_is_retryable() -> None:
    from omnidesk.plugins.config import load_config
    from channels_plugins.twitter.adapter import TwitterConfig

    from .conftest import SECRETS

    config = load_config(TwitterConfig, {"user_id": OWN_ID, "api_base_url": "http://127.0.0.1:9", "timeout_s": 2.0}, SECRETS)
    with pytest.raises(RetryableSendError, match="could not be reached"):
        TwitterChannel(config).send(reply())  # type: ignore[arg-type]
