"""X payloads → contract items. Pure: no database, no network, no Django.

Three shapes reach `parse()`, told apart by their keys:

- a polled API v2 page (`data`, `includes`, `meta`): mentions (tweets) or DM events;
- an Account Activity webhook POST (`for_user_id` + one `*_events` list): its tweets and DMs are
  API v1.1 objects (`id_str`, `user`, `created_at` like "Wed Oct 10 20:19:24 +0000 2018",
  DMs with `message_create` and a separate `users` map);
- a v1.1 timeline (a JSON list of statuses) or one status, as recorded in tweepy's cassettes.

A bad record inside a page becomes an `Invalid` item; the rest of the page still applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from omnidesk.plugins.payloads import load_json
from omnidesk.plugins.contract import (
    Author,
    DeliveryUpdate,
    IdentityKind,
    IdentityRef,
    Ignored,
    InboundMessage,
    Invalid,
    MalformedPayload,
    MessageUpdate,
    ParsedItem,
    UnsupportedEvent,
)

#: Account Activity keys we understand, and the event type each reports
ACTIVITY_KEYS = {
    "tweet_create_events": "mention",
    "direct_message_events": "direct_message",
    "favorite_events": "favorite",
    "follow_events": "follow",
    "direct_message_indicate_typing_events": "typing",
    "direct_message_mark_read_events": "read",
    "tweet_delete_events": "tweet_delete",
}

Json = dict[str, Any]


def load(body: bytes) -> Json | list[Any]:
    return load_json(body, allow_list=True)  # type: ignore[no-any-return]


def parse_payload(data: Json | list[Any], own_id: str) -> list[ParsedItem]:
    if isinstance(data, list):
        return [_v1_tweet(s, own_id) for s in data]
    if "for_user_id" in data:
        return _activity(data, own_id or _id(data.get("for_user_id")))
    if "data" in data or "meta" in data or "errors" in data:
        return _v2_page(data, own_id)
    if "id_str" in data and "user" in data:
        return [_v1_tweet(data, own_id)]
    raise MalformedPayload("neither an X API v2 page (data/meta), an Account Activity event (for_user_id) nor a status")


# --- small typed readers ------------------------------------------------------------------


def _id(value: object) -> str:
    """X ids are strings in v2 and numbers (with an `id_str` twin) in v1.1."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value)
    return value.strip() if isinstance(value, str) and value.strip().isdigit() else ""


def _obj(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _text(value: object) -> str:
    """X escapes exactly &, < and > in tweet and DM text (both API versions); undo only those."""
    if not isinstance(value, str):
        return ""
    return value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _expand_urls(text: str, entities: object) -> str:
    """Show agents where links go: X rewrites every URL to an opaque t.co link."""
    for url in _list(_obj(entities).get("urls")):
        short, expanded = _obj(url).get("url"), _obj(url).get("expanded_url")
        if isinstance(short, str) and short and isinstance(expanded, str) and expanded:
            text = text.replace(short, expanded)
    return text


def _iso_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
        return when.astimezone(timezone.utc) if when.tzinfo else None
    except (ValueError, OverflowError):
        return None


def _v1_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y").astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def _ms_time(value: object) -> datetime | None:
    """Account Activity timestamps are milliseconds since the epoch, as strings."""
    ms = _id(value)
    if not ms:
        return None
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def dm_conversation_id(a: str, b: str) -> str:
    """A one-to-one DM conversation's id as X forms it: both user ids, smaller first.

    v2 DM events carry `dm_conversation_id`; Account Activity DMs do not, so we compute it
    to thread both kinds onto the same conversation.
    """
    lo, hi = sorted((a, b), key=lambda x: (len(x), x))
    return f"{lo}-{hi}"


def _author(user_id: str, user: Json, *, followers: int | None, verified: bool | None) -> Author:
    username = user.get("username") or user.get("screen_name")
    name = user.get("name")
    username = username if isinstance(username, str) else ""
    name = name if isinstance(name, str) else ""
    if username and name:
        display = f"@{username} ({name})"
    else:
        display = f"@{username}" if username else name or f"X user {user_id}"
    return Author(
        identity=IdentityRef(IdentityKind.TWITTER, user_id), display_name=display[:200], followers=followers, verified=verified
    )


def _permalink(user: Json, tweet_id: str) -> tuple[tuple[str, str], ...]:
    username = user.get("username") or user.get("screen_name")
    if isinstance(username, str) and username:
        return (("permalink", f"https://x.com/{username}/status/{tweet_id}"),)
    return ()


# --- API v2 pages -------------------------------------------------------------------------


def _v2_page(data: Json, own_id: str) -> list[ParsedItem]:
    raw_items = data.get("data", [])
    if isinstance(raw_items, dict):  # single-object endpoints (GET /2/tweets/:id)
        raw_items = [raw_items]
    if not isinstance(raw_items, list):
        raise MalformedPayload(f"data: must be a list, got {type(raw_items).__name__}")
    users = {_id(u.get("id")): u for u in _list(_obj(data.get("includes")).get("users")) if isinstance(u, dict)}
    items: list[ParsedItem] = []
    for raw in raw_items:
        if not isinstance(raw, dict):
            items.append(Invalid("data[]", f"an item must be an object, got {type(raw).__name__}"))
        elif "event_type" in raw:
            items.append(_v2_dm(raw, users, own_id))
        else:
            items.append(_v2_tweet(raw, users, own_id))
    for err in _list(data.get("errors")):
        err = _obj(err)
        what = err.get("resource_id") or err.get("value") or "?"
        items.append(Invalid(f"errors[{what}]", str(err.get("detail") or err.get("title") or err)[:300]))
    return items


def _v2_tweet(t: Json, users: Mapping[str, Json], own_id: str) -> ParsedItem:
    tweet_id = _id(t.get("id"))
    if not tweet_id:
        return Invalid("tweet", "a tweet without an id")
    refs = {r.get("type"): _id(r.get("id")) for r in _list(t.get("referenced_tweets")) if isinstance(r, dict)}
    if "retweeted" in refs:
        return Ignored("retweet", f"tweet {tweet_id} is a retweet of {refs['retweeted']}")
    author_id = _id(t.get("author_id"))
    if not author_id:
        return Invalid(f"tweet {tweet_id}", "no author_id: the request must ask for expansions=author_id")
    if own_id and author_id == own_id:
        return Ignored("mention", f"tweet {tweet_id} is our own")
    user = users.get(author_id, {})
    note = _obj(t.get("note_tweet"))  # tweets over 280 carry their full text here
    text = _text(note.get("text") or t.get("text"))
    text = _expand_urls(text, note.get("entities") if note else t.get("entities"))
    replied_to = refs.get("replied_to", "")
    return InboundMessage(
        external_id=tweet_id,
        event_type="mention",
        thread_key=_id(t.get("conversation_id")) or replied_to or tweet_id,
        author=_author(
            author_id, user,
            followers=_int(_obj(user.get("public_metrics")).get("followers_count")), verified=_bool(user.get("verified")),
        ),
        text=text,
        visibility="public",
        references=(replied_to,) if replied_to else (),
        sent_at=_iso_time(t.get("created_at")),
        metadata=_permalink(user, tweet_id),
    )


def _v2_dm(e: Json, users: Mapping[str, Json], own_id: str) -> ParsedItem:
    event_id = _id(e.get("id"))
    kind = e.get("event_type")
    if not event_id:
        return Invalid("dm_event", "a DM event without an id")
    if kind != "MessageCreate":
        return Ignored("direct_message", f"DM event {event_id} is {kind!r}, not a message")
    sender = _id(e.get("sender_id"))
    if not sender:
        return Invalid(f"dm_event {event_id}", "no sender_id: the request must ask for dm_event.fields=sender_id")
    if own_id and sender == own_id:
        return Ignored("direct_message", f"DM {event_id} is one we sent")
    conversation = e.get("dm_conversation_id")
    conversation = conversation if isinstance(conversation, str) and conversation else ""
    if not conversation and own_id:
        conversation = dm_conversation_id(sender, own_id)
    user = users.get(sender, {})
    return InboundMessage(
        external_id=event_id,
        event_type="direct_message",
        thread_key=f"dm:{conversation or sender}",
        author=_author(
            sender, user,
            followers=_int(_obj(user.get("public_metrics")).get("followers_count")), verified=_bool(user.get("verified")),
        ),
        text=_expand_urls(_text(e.get("text")), e.get("entities")),
        visibility="private",
        sent_at=_iso_time(e.get("created_at")),
    )


# --- v1.1 objects (Account Activity, old timelines) ------------------------------------------


def _v1_tweet(s: object, own_id: str) -> ParsedItem:
    if not isinstance(s, dict):
        return Invalid("status", f"a status must be an object, got {type(s).__name__}")
    tweet_id = _id(s.get("id_str")) or _id(s.get("id"))
    if not tweet_id:
        return Invalid("status", "a status without an id")
    if isinstance(s.get("retweeted_status"), dict):
        return Ignored("retweet", f"tweet {tweet_id} is a retweet")
    user = _obj(s.get("user"))
    author_id = _id(user.get("id_str")) or _id(user.get("id"))
    if not author_id:
        return Invalid(f"status {tweet_id}", "no user")
    if own_id and author_id == own_id:
        return Ignored("mention", f"tweet {tweet_id} is our own")
    extended = _obj(s.get("extended_tweet"))  # 140+ character tweets: `text` is cut short
    if extended.get("full_text"):
        text = _expand_urls(_text(extended.get("full_text")), extended.get("entities"))
    else:
        text = _expand_urls(_text(s.get("full_text") or s.get("text")), s.get("entities"))
    replied_to = _id(s.get("in_reply_to_status_id_str")) or _id(s.get("in_reply_to_status_id"))
    return InboundMessage(
        external_id=tweet_id,
        event_type="mention",
        # v1.1 has no conversation_id: the tweet answered stands in; references do the threading
        thread_key=replied_to or tweet_id,
        author=_author(author_id, user, followers=_int(user.get("followers_count")), verified=_bool(user.get("verified"))),
        text=text,
        visibility="public",
        references=(replied_to,) if replied_to else (),
        sent_at=_v1_time(s.get("created_at")) or _ms_time(s.get("timestamp_ms")),
        metadata=_permalink(user, tweet_id),
    )


def _activity(data: Json, own_id: str) -> list[ParsedItem]:
    present = [k for k in data if k.endswith("_events") or k == "user_event"]
    known = [k for k in present if k in ACTIVITY_KEYS]
    if not known:
        raise UnsupportedEvent(
            f"Account Activity event {', '.join(present) or '(none)'} is not one of: {', '.join(sorted(ACTIVITY_KEYS))}"
        )
    users = {k: _obj(v) for k, v in _obj(data.get("users")).items()}
    items: list[ParsedItem] = []
    for key in known:
        events = data[key]
        if not isinstance(events, list):
            raise MalformedPayload(f"{key}: must be a list, got {type(events).__name__}")
        kind = ACTIVITY_KEYS[key]
        for event in events:
            if not isinstance(event, dict):
                items.append(Invalid(key, f"an event must be an object, got {type(event).__name__}"))
            elif kind == "mention":
                items.append(_v1_tweet(event, own_id))
            elif kind == "direct_message":
                items.append(_v1_dm(event, users, own_id))
            elif kind == "read":
                items.append(_read(event, own_id))
            elif kind == "tweet_delete":
                items.append(_deleted(event))
            else:
                items.append(Ignored(kind, _ignored_reason(kind, event)))
    return items


def _ignored_reason(kind: str, event: Json) -> str:
    if kind == "favorite":
        return f"like of tweet {_id(_obj(event.get('favorited_status')).get('id_str')) or '?'}"
    if kind == "follow":
        return f"{event.get('type') or 'follow'} by user {_id(_obj(event.get('source')).get('id')) or '?'}"
    return f"typing indicator from user {_id(event.get('sender_id')) or '?'}"


def _v1_dm(e: Json, users: Mapping[str, Json], own_id: str) -> ParsedItem:
    event_id = _id(e.get("id"))
    if not event_id:
        return Invalid("direct_message_events", "a DM event without an id")
    if e.get("type") != "message_create":
        return Ignored("direct_message", f"DM event {event_id} is {e.get('type')!r}, not a message")
    create = _obj(e.get("message_create"))
    sender = _id(create.get("sender_id"))
    recipient = _id(_obj(create.get("target")).get("recipient_id"))
    if not sender:
        return Invalid(f"direct_message {event_id}", "no message_create.sender_id")
    if own_id and sender == own_id:
        return Ignored("direct_message", f"DM {event_id} is one we sent")
    message = _obj(create.get("message_data"))
    user = users.get(sender, {})
    other = recipient or own_id
    return InboundMessage(
        external_id=event_id,
        event_type="direct_message",
        thread_key=f"dm:{dm_conversation_id(sender, other) if other else sender}",
        author=_author(sender, user, followers=_int(user.get("followers_count")), verified=_bool(user.get("verified"))),
        text=_expand_urls(_text(message.get("text")), message.get("entities")),
        visibility="private",
        sent_at=_ms_time(e.get("created_timestamp")),
    )


def _read(e: Json, own_id: str) -> ParsedItem:
    reader = _id(e.get("sender_id"))
    last = _id(e.get("last_read_event_id"))
    if not reader or not last:
        return Invalid("direct_message_mark_read_events", "a read event needs sender_id and last_read_event_id")
    if own_id and reader == own_id:
        return Ignored("read", f"we read DMs up to {last}")
    return DeliveryUpdate(
        external_id=last,
        state="read",
        at=_ms_time(e.get("created_timestamp")),
        recipient=IdentityRef(IdentityKind.TWITTER, reader),
        watermark=_ms_time(e.get("created_timestamp")),
    )


def _deleted(e: Json) -> ParsedItem:
    status = _obj(e.get("status"))
    tweet_id = _id(status.get("id_str")) or _id(status.get("id"))
    if not tweet_id:
        return Invalid("tweet_delete_events", "a delete event without status.id")
    return MessageUpdate(external_id=tweet_id, change="removed", at=_ms_time(e.get("timestamp_ms")))
