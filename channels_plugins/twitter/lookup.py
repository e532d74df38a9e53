"""Did an interrupted reply reach X? The account's own tweets and DMs, matched to the reply.

X takes no idempotency key for tweets or DMs, so a reply whose sender died after X accepted it
is looked up instead of sent again:

- a public reply: the account's own tweets since the reply was queued (`GET /2/users/:id/tweets`,
  start_time), one answering the same tweet with the same text (a thread: each part answering
  the part before);
- a DM: the conversation with that person (`GET /2/dm_conversations/with/:id/dm_events`, newest
  first, read back to `since`), a MessageCreate from the account with the same text.

Texts are compared after undoing what X does to a posted text: it HTML-escapes &, < and >,
starts a reply with the @handles of the thread it joins, and rewrites every URL (with or without
a protocol) to a t.co link. The whole rest of the text must match, not a prefix: X refuses a
duplicate tweet, so two of our tweets answering one tweet never share a text, and the DMs
compared are those sent since this reply was queued.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from omnidesk.plugins.contract import Delivery, OutboundReply, PermanentSendError

from .client import XClient
from .textlength import extract_urls

#: X's clock against ours: tweets this much older than `since` are still read
CLOCK_MARGIN = timedelta(minutes=5)
#: pages of 100 read before giving up: past that the reply is not confirmed either way
MAX_PAGES = 10
_LEADING_HANDLES = re.compile(r"^(?:@\w{1,15}\s+)+")


def comparable(text: str) -> str:
    """`text` as it can be compared with what X shows of it: unescaped, URLs and reply handles out."""
    text = _LEADING_HANDLES.sub("", html.unescape(text).strip())
    for start, end in reversed(extract_urls(text)):
        text = text[:start] + "\x00" + text[end:]
    return " ".join(text.split())


def thread_find(
    client: XClient, user_id: str, reply: OutboundReply, parts: list[str], *, since: datetime
) -> Delivery | None:
    """The account's tweet(s) posting `parts` in answer to `reply.in_reply_to`, or None."""
    start = since - CLOCK_MARGIN
    # (the tweet it answers, its comparable text) → (id, created_at), for every tweet of ours since
    posted: dict[tuple[str, str], tuple[str, datetime | None]] = {}
    for tweet in _all(lambda token: client.own_tweets(user_id, start_time=start, pagination_token=token)):
        answered = next(
            (str(r.get("id")) for r in tweet.get("referenced_tweets") or [] if r.get("type") == "replied_to"), ""
        )
        posted.setdefault((answered, comparable(str(tweet.get("text") or ""))), (str(tweet.get("id")), _time(tweet)))
    chain: list[tuple[str, datetime | None]] = []
    previous = reply.in_reply_to
    for part in parts:
        tweet = posted.get((previous, comparable(part)))
        if tweet is None:
            break
        chain.append(tweet)
        previous = tweet[0]
    if not chain:
        return None
    if len(chain) < len(parts):
        # Like a thread that failed midway in send(): posting the rest is left to a person.
        raise PermanentSendError(
            f"the thread stopped after part {len(chain)} of {len(parts)} "
            f"(posted: {', '.join(t for t, _ in chain)}) when the sender was interrupted"
        )
    return Delivery(external_id=chain[0][0], sent_at=chain[0][1])


def dm_find(client: XClient, user_id: str, reply: OutboundReply, *, since: datetime) -> Delivery | None:
    """The account's DM to `reply.to` with the reply's text, sent since `since`, or None."""
    wanted = comparable(reply.text)
    oldest = since - CLOCK_MARGIN
    for event in _all(lambda token: client.dms_with(reply.to.value, pagination_token=token), until=oldest):
        if (
            event.get("event_type") == "MessageCreate"
            and str(event.get("sender_id")) == user_id
            and comparable(str(event.get("text") or "")) == wanted
        ):
            conversation = str(event.get("dm_conversation_id") or "")
            thread_key = f"dm:{conversation}" if conversation else ""
            return Delivery(external_id=str(event.get("id")), sent_at=_time(event), thread_key=thread_key)
    return None


def _all(page: Callable[[str | None], dict[str, Any]], *, until: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Items of every page, newest first, down to `until` (the endpoint's own start_time when None)."""
    token: str | None = None
    for _ in range(MAX_PAGES):
        body = page(token)
        for item in body.get("data") or []:
            when = _time(item) if isinstance(item, dict) else None
            if until is not None and when is not None and when < until:
                return
            if isinstance(item, dict):
                yield item
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        token = str(meta.get("next_token") or "") or None
        if token is None:
            return
    raise PermanentSendError(
        f"X holds more than {MAX_PAGES * 100} of the account's messages since the reply was queued: "
        "whether it was posted before the sender stopped could not be checked; look on X and resend if it is not there"
    )


def _time(item: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(item["created_at"]))
    except (KeyError, ValueError):
        return None
