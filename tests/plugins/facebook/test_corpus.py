"""Every payload of ../shared/corpus/facebook, straight from there (skipped where the folder is absent).

restfb's samples are test data of a library, not truth about omnidesk: the decisions we take on
them are written in EXPECTED. Deviations worth knowing: restfb's sample commenter is usually
the Page itself (`from.id` = the Page id), so its "comment add" samples are the Page's own
comments here and are ignored, and its comment edit/hide/remove samples update whatever
customer message has that id; `parking` / `payment_options` / `foo` fields are unsupported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels_plugins.facebook.webhook import sign
from omnidesk.plugins.contract import (
    DeliveryUpdate,
    Ignored,
    InboundMessage,
    Invalid,
    MessageUpdate,
    RawEvent,
    UnsupportedEvent,
)

from .conftest import APP_SECRET, channel, signed

PAGE_OWN = ["Ignored:page_post"]
MESSAGE = ["InboundMessage:message"]

#: file → what parse() makes of it ("Type:event_type or change or state"), or the error it raises
EXPECTED: dict[str, list[str] | str] = {
    "feed-comment-add-211.json": PAGE_OWN,
    "feed-comment-add-25.json": PAGE_OWN,
    "feed-comment-add-with-photo.json": PAGE_OWN,
    "feed-comment-add-with-video.json": PAGE_OWN,
    "feed-comment-edited-25.json": ["MessageUpdate:edited"],
    "feed-comment-edited-with-photo.json": ["MessageUpdate:edited"],
    "feed-comment-edited-with-video.json": ["MessageUpdate:edited"],
    "feed-comment-hide.json": ["MessageUpdate:hidden"],
    "feed-comment-remove-25.json": ["MessageUpdate:removed"],
    "feed-comment-unhide.json": ["MessageUpdate:unhidden"],
    "feed-post-add-25.json": ["InboundMessage:visitor_post"],
    "feed-post-edit.json": ["MessageUpdate:edited"],
    "feed-post-hide.json": ["MessageUpdate:hidden"],
    "feed-post-remove-25.json": PAGE_OWN,
    "feed-post-unhide.json": ["MessageUpdate:unhidden"],
    "feed-reaction-add-comment.json": ["Ignored:reaction"],
    "feed-reaction-add-reply.json": ["Ignored:reaction"],
    "feed-reaction-add.json": ["Ignored:reaction"],
    "feed-reaction-edit.json": ["Ignored:reaction"],
    "feed-reaction-remove.json": ["Ignored:reaction"],
    "feed-status-add-25.json": PAGE_OWN,
    "feed-status-add-photos.json": PAGE_OWN,
    "feed-status-edited-25.json": PAGE_OWN,
    "feed-status-edited-photos.json": PAGE_OWN,
    "feed-status-hide-25.json": ["MessageUpdate:hidden"],
    "feed-status-unhide.json": ["MessageUpdate:unhidden"],
    "feed-two-entries-25.json": "UnsupportedEvent",
    "mention-comment-add.json": ["InboundMessage:mention"],
    "mention-post-add-real.json": ["InboundMessage:mention"],
    "mention-post-add.json": ["InboundMessage:mention"],
    "messaging-delivery-basic.json": ["DeliveryUpdate:delivered", "DeliveryUpdate:delivered"],
    "messaging-message-basic-echo.json": ["Ignored:echo"],
    "messaging-message-basic.json": MESSAGE,
    "messaging-message-edits.json": ["MessageUpdate:edited"],
    "messaging-message-fallback-attachment.json": MESSAGE,
    "messaging-message-isdeleted.json": ["MessageUpdate:removed"],
    "messaging-message-isunsupported.json": MESSAGE,
    "messaging-message-location-attachment.json": MESSAGE,
    "messaging-message-media-attachment.json": MESSAGE,
    "messaging-message-quickreply.json": MESSAGE,
    "messaging-message-reply-1.json": MESSAGE,
    "messaging-message-reply-2.json": MESSAGE,
    "messaging-message-sticker-thumbup.json": MESSAGE,
    "messaging-message-sticker.json": MESSAGE,
    "messaging-optin-basic.json": ["Ignored:optin"],
    "messaging-policy-callback-block.json": ["Ignored:policy_enforcement"],
    "messaging-policy-callback-unblock.json": ["Ignored:policy_enforcement"],
    "messaging-postback-basic.json": ["InboundMessage:postback"],
    "messaging-reaction-1.json": ["Ignored:messenger_reaction"],
    "messaging-reaction-2.json": ["Ignored:messenger_reaction"],
    "messaging-read-basic.json": ["DeliveryUpdate:read"],
    "messaging-referral-basic.json": ["Ignored:referral"],
    "ratings-comment-add-25.json": ["Ignored:rating"],
    "standby-message-basic-echo.json": ["Ignored:echo"],
    "unknown-change-value.json": "UnsupportedEvent",
}


@pytest.fixture
def restfb(shared_corpus: str) -> Path:
    folder = Path(shared_corpus) / "facebook" / "restfb-webhooks"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not there")
    return folder


def summary(items: list[object]) -> list[str]:
    out = []
    for item in items:
        if isinstance(item, (InboundMessage, Ignored)):
            out.append(f"{type(item).__name__}:{item.event_type}")
        elif isinstance(item, MessageUpdate):
            out.append(f"MessageUpdate:{item.change}")
        elif isinstance(item, DeliveryUpdate):
            out.append(f"DeliveryUpdate:{item.state}")
        elif isinstance(item, Invalid):
            out.append(f"Invalid:{item.reason}")
    return out


def test_every_corpus_payload_has_a_decision(restfb):
    found = {p.name for p in restfb.glob("*.json")}
    assert found == set(EXPECTED), f"new: {sorted(found - set(EXPECTED))}, gone: {sorted(set(EXPECTED) - found)}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_corpus_payload_is_verified_and_parsed_as_decided(restfb, name):
    body = (restfb / name).read_bytes()
    plugin = channel()
    assert plugin.verify(signed(body)) is None
    expected = EXPECTED[name]
    if expected == "UnsupportedEvent":
        with pytest.raises(UnsupportedEvent):
            plugin.parse(RawEvent(body=body))
        return
    items = plugin.parse(RawEvent(body=body))
    assert summary(items) == expected
    for item in items:
        if isinstance(item, InboundMessage):
            assert item.external_id and item.author.identity.value and item.text


def test_the_signature_known_answer(shared_corpus):
    vector = json.loads((Path(shared_corpus) / "facebook" / "meta_signature_test_vector.json").read_text())
    body = (Path(shared_corpus) / "facebook" / vector["payload_file"]).read_bytes()
    assert sign(vector["app_secret"], body) == vector["expected_X-Hub-Signature-256"]


@pytest.mark.django_db
def test_the_whole_corpus_through_the_webhook_and_pipeline(restfb, client):
    from omnidesk.inbox.models import InboundEvent
    from omnidesk.inbox.services import inbound_events_apply
    from omnidesk.plugins.services import channel_account_save

    from .conftest import PAGE, SECRETS

    channel_account_save(kind="facebook", slug="acme-facebook", name="Acme Page", config={"page_id": PAGE}, secrets=SECRETS)
    for name in sorted(EXPECTED):
        body = (restfb / name).read_bytes()
        response = client.generic("POST", "/hooks/acme-facebook/", body, content_type="application/json",
                                  HTTP_X_HUB_SIGNATURE_256=sign(APP_SECRET, body))
        assert response.status_code == 200, (name, response.content)
    inbound_events_apply(limit=500)
    statuses = {e.status for e in InboundEvent.objects.all()}
    assert InboundEvent.objects.count() == len(EXPECTED) and "pending" not in statuses
    failed = {e.error.split(":")[0] for e in InboundEvent.objects.filter(status="failed")}
    assert failed == {"unsupported_event"}, [e.error for e in InboundEvent.objects.filter(status="failed")]
