"""The fake platforms answer every delivery lookup the X and Facebook plugins make, from what they
were sent: nothing before a reply is posted, that reply (by the platform's id) after. The kill test
goes through the public-reply route only; this keeps the other three honest. No services needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from channels_plugins.facebook.adapter import FacebookChannel, FacebookConfig
from channels_plugins.twitter.adapter import TwitterChannel, TwitterConfig
from omnidesk.plugins.contract import IdentityKind, IdentityRef, OutboundReply
from omnidesk.plugins.testing import load_config

from .peers import FakePlatforms
from .traffic import FB_PAGE, SECRETS, X_OWN_ID

CUSTOMER = "4000001"


def plugin(kind: str, url: str) -> TwitterChannel | FacebookChannel:
    if kind in ("tweet", "dm"):
        config = {"user_id": X_OWN_ID, "username": "acme", "api_base_url": url, "timeout_s": 5.0, "poll_enabled": False}
        return TwitterChannel(load_config(TwitterConfig, config, SECRETS["twitter"]), account_slug="acme-twitter")
    config = {"page_id": FB_PAGE, "graph_url": url, "timeout_s": 5.0}
    return FacebookChannel(load_config(FacebookConfig, config, SECRETS["facebook"]), account_slug="acme-facebook")


def reply(kind: str) -> OutboundReply:
    """A reply of each route: a public reply to a tweet, a DM, a comment reply, a Messenger message."""
    x, fb = IdentityRef(IdentityKind.TWITTER, CUSTOMER), IdentityRef(IdentityKind.FACEBOOK, CUSTOMER, FB_PAGE)
    routes = {
        "tweet": {"to": x, "visibility": "public", "in_reply_to": "1600000000000000001"},
        "dm": {"to": x, "visibility": "private", "thread_key": f"dm:{CUSTOMER}-{X_OWN_ID}"},
        "comment": {"to": fb, "visibility": "public", "thread_key": f"post:{FB_PAGE}_9", "in_reply_to": f"{FB_PAGE}_9_1"},
        "messenger": {"to": fb, "visibility": "private", "thread_key": f"psid:{CUSTOMER}", "in_reply_to": "m_customer-1",
                      "customer_last_message_at": datetime.now(UTC)},
    }
    text = "Fixed & <live> [r1]"  # X shows & < > escaped
    return OutboundReply(idempotency_key=f"out-{kind}", ticket_ref=1, text=text, **routes[kind])  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["tweet", "dm", "comment", "messenger"])
def test_a_lookup_finds_the_reply_once_the_platform_has_it(platforms: FakePlatforms, kind: str) -> None:
    channel, sent_reply = plugin(kind, platforms.url), reply(kind)
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert channel.delivery_find(sent_reply, since=since) is None
    delivery = channel.send(sent_reply)
    found = channel.delivery_find(sent_reply, since=since)
    assert found is not None and found.external_id == delivery.external_id == platforms.posted[kind][-1].id
    assert platforms.deliveries.delivered[(channel.kind, 1)] == 1  # looked up twice, posted once
