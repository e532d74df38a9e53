"""parse(): the decisions behind the goldens, stated one by one."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels_plugins.facebook.parsing import epoch
from omnidesk.plugins.contract import (
    DeliveryUpdate,
    IdentityKind,
    IdentityRef,
    Ignored,
    InboundMessage,
    Invalid,
    MalformedPayload,
    MessageUpdate,
    PluginError,
    UnsupportedEvent,
)

from .conftest import PAGE, parse

POST = f"{PAGE}_901097836652708"
COMMENT = "901097836652708_903438993085259"


def body(*entries: dict) -> bytes:
    return json.dumps({"object": "page", "entry": list(entries)}).encode()


def test_a_comment_is_a_public_message_threaded_per_post():
    (msg,) = parse("comment__top_level")
    assert isinstance(msg, InboundMessage)
    assert (msg.external_id, msg.thread_key, msg.visibility) == (COMMENT, f"post:{POST}", "public")
    assert msg.author.identity == IdentityRef(IdentityKind.FACEBOOK, "5550001112223", PAGE)
    assert msg.author.display_name == "Rosa Parks" and msg.references == ()
    assert msg.sent_at == datetime(2015, 12, 3, 9, 30, 3, tzinfo=timezone.utc)


def test_a_reply_in_a_comment_thread_references_its_parent_comment():
    (msg,) = parse("comment__reply_in_thread")
    assert msg.references == (COMMENT,) and msg.thread_key == f"post:{POST}"


def test_legacy_sender_fields_and_numeric_ids():
    (msg,) = parse("comment__legacy_sender_fields")
    assert msg.author.identity.value == "5550001112224" and msg.author.display_name == "Tester"


def test_photos_are_kept_as_links_not_downloaded():
    (msg,) = parse("comment__with_photo")
    assert msg.attachments == ()
    assert msg.text.startswith("This is what arrived\n[photo] https://scontent-fra3-1.xx.fbcdn.net/")
    assert dict(msg.metadata)["photo"].startswith("https://scontent-fra3-1.xx.fbcdn.net/")


def test_the_pages_own_comments_and_posts_are_ignored_and_counted():
    assert [i.event_type for i in parse("page_post__our_comment_reply")] == ["page_post"]
    assert [i.event_type for i in parse("page_post__status_add")] == ["page_post"]
    assert [i.event_type for i in parse("reaction__love_on_comment")] == ["reaction"]


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("feed_change__comment_edited", "edited"),
        ("feed_change__comment_hidden", "hidden"),
        ("feed_change__comment_unhidden", "unhidden"),
        ("feed_change__comment_removed", "removed"),
    ],
)
def test_comment_changes_update_the_message(name, change):
    (update,) = parse(name)
    assert isinstance(update, MessageUpdate) and (update.external_id, update.change) == (COMMENT, change)
    if change == "edited":
        assert "edited: and late" in update.text


def test_a_comment_hidden_on_arrival_is_a_message_then_hidden():
    msg, update = parse("comment__hidden_on_arrival")
    assert isinstance(msg, InboundMessage) and update == MessageUpdate(COMMENT, "hidden", at=msg.sent_at)


def test_mentions_without_an_author_get_one_identity_each():
    (msg,) = parse("mention__comment_without_author")
    assert msg.event_type == "mention" and msg.visibility == "public"
    assert msg.author.identity.value == f"unknown:{msg.external_id}" and msg.author.display_name == "Facebook user"
    (post,) = parse("mention__post_with_sender")
    assert post.author.identity.value == "44444444" and post.text.startswith("[a mention without text")


def test_messenger_text_attachments_and_quick_replies():
    (text,) = parse("message__text")
    assert (text.visibility, text.thread_key, text.text) == ("private", "psid:987654321432", "hello, world!")
    assert text.author.identity == IdentityRef(IdentityKind.FACEBOOK, "987654321432", "12345654332")
    assert text.sent_at == datetime.fromtimestamp(1457764197.627, tz=timezone.utc)
    (image,) = parse("message__image_attachment")
    assert image.text == "[image] https://scontent.xx.fbcdn.net/v/t1.15752-9/lamp.jpg" and image.attachments == ()
    assert ("attachment_1_type", "image") in image.metadata
    (where,) = parse("message__location")
    assert where.text == "[location] 12.34, 43.21"
    (like,) = parse("message__like_sticker")
    assert like.text.startswith("[like 👍] https://")
    (quick,) = parse("message__quick_reply")
    assert quick.text == "quick reply text" and ("quick_reply_payload", "PAYLOAD_QUICK_REPLY") in quick.metadata


def test_a_messenger_reply_references_the_message_it_answers():
    (msg,) = parse("message__reply_to_message")
    assert msg.references == ("very_long_id_representing_the_original_message",)


def test_postbacks_are_customer_messages():
    (tap,) = parse("postback__get_started")
    assert (tap.external_id, tap.event_type, tap.text) == ("m_postback-1", "postback", "[tapped] Get Started")
    (legacy,) = parse("postback__legacy_without_mid")
    assert legacy.external_id == "postback:987654321432:1458692752478"


def test_echoes_are_ignored_and_edits_and_unsends_update():
    assert [i.event_type for i in parse("echo__our_reply")] == ["echo"]
    (edit,) = parse("message_change__edited")
    assert (edit.change, edit.text) == ("edited", "hello, world!")
    (gone,) = parse("message_change__unsent")
    assert gone.change == "removed"


def test_read_is_a_watermark_for_the_person():
    (read,) = parse("read__watermark")
    assert isinstance(read, DeliveryUpdate) and read.state == "read"
    assert read.recipient == IdentityRef(IdentityKind.FACEBOOK, "987654321432", "12345654332")
    assert read.watermark == datetime.fromtimestamp(1458668856.253, tz=timezone.utc)


def test_delivery_names_each_mid_and_the_watermark():
    by_mid, by_mark = parse("delivery__mids_and_watermark")
    assert (by_mid.external_id, by_mid.state, by_mid.recipient) == ("mid.1458668856218:ed81099e15d3f4f233", "delivered", None)
    assert by_mark.watermark is not None and by_mark.recipient is not None and by_mark.state == "delivered"


def test_a_batch_yields_every_entry_page_and_event():
    items = parse("comment__batch_pages_and_messenger")
    assert [type(i).__name__ for i in items] == [
        "InboundMessage", "InboundMessage", "Ignored", "InboundMessage", "InboundMessage", "DeliveryUpdate",
    ]
    assert {i.author.identity.namespace for i in items if isinstance(i, InboundMessage)} == {PAGE, "9876543210987"}


def test_unknown_parts_are_ignored_beside_known_ones_and_unsupported_alone():
    ignored, msg = parse("unknown__field_beside_a_comment")
    assert ignored == Ignored("unknown", "entry[0].changes[0]: Page field 'leadgen' is not handled")
    assert isinstance(msg, InboundMessage)
    for name in ("unsupported__unknown_field", "unsupported__two_unknown_entries", "unsupported__instagram_object"):
        with pytest.raises(UnsupportedEvent):
            parse(name)


def test_one_broken_event_does_not_lose_the_batch():
    good = {"sender": {"id": "1"}, "recipient": {"id": PAGE}, "timestamp": 1, "message": {"mid": "m_ok", "text": "hi"}}
    bad = {"sender": {"id": ["not", "an", "id"]}, "message": {"mid": "m_bad", "text": "hi"}}
    items = parse(body({"id": PAGE, "time": 1, "messaging": [bad, good]}))
    assert isinstance(items[0], Invalid) and "sender.id" in items[0].reason
    assert isinstance(items[1], InboundMessage) and items[1].external_id == "m_ok"


def test_an_empty_batch_is_nothing_and_a_broken_body_is_malformed():
    assert parse(body()) == []
    with pytest.raises(MalformedPayload):
        parse(b'{"object": "page"}')
    with pytest.raises(MalformedPayload):
        parse(b"\xff")


def test_meta_timestamps():
    assert epoch(1449135003, millis=False) == datetime(2015, 12, 3, 9, 30, 3, tzinfo=timezone.utc)
    assert epoch(1449135003000, millis=True) == epoch("1449135003", millis=False)
    assert epoch("2016-07-07T12:00:00+0000", millis=False) == datetime(2016, 7, 7, 12, tzinfo=timezone.utc)
    for absurd in (None, True, -5, float("nan"), 10**30, "yesterday"):
        assert epoch(absurd, millis=True) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["message", "read", "delivery", "postback", "reaction", "sender", "message_edit", "standby",
                        "field", "value", "item", "verb", "from", "comment_id", "post_id", "mid", "attachments"])
events = st.dictionaries(keys, json_values | st.dictionaries(keys, json_values, max_size=4), max_size=5)


@settings(max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(events, st.sampled_from(["messaging", "standby", "changes"]))
def test_odd_events_give_items_or_plugin_errors_never_crashes(event, where):
    try:
        items = parse(body({"id": PAGE, "time": 1, where: [event]}))
    except PluginError:
        return
    assert all(isinstance(i, (InboundMessage, DeliveryUpdate, MessageUpdate, Ignored, Invalid)) for i in items)
