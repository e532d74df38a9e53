"""Did an interrupted reply reach Facebook? The Page's own comments and Messenger messages, matched to it.

The Graph API takes no idempotency key for comments or messages, so a reply whose sender died
after Meta accepted it is looked up instead of sent again, newest first, back to `since`:

- a comment reply: the replies to the comment or post it answers (`GET /{object-id}/comments`,
  reverse chronological), one from the Page with the same text;
- a Messenger reply: the Page's conversation with that person (`GET /{page-id}/conversations`
  with `user_id`, then `GET /{conversation-id}/messages`), a message from the Page with the same text.

Meta stores the text as sent (no link rewriting); only surrounding whitespace is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from omnidesk.plugins.contract import Delivery, OutboundReply, PermanentSendError

from .client import GraphClient

#: Meta's clock against ours: items this much older than `since` are still read
CLOCK_MARGIN = timedelta(minutes=5)
#: pages read before giving up: past that the reply is not confirmed either way
MAX_PAGES = 10
PAGE_SIZE = "100"


def comment_find(
    graph: GraphClient, page_id: str, target: str, reply: OutboundReply, *, since: datetime
) -> Delivery | None:
    """The Page's reply to `target` (a comment or post id) with the reply's text, or None."""
    params = {"fields": "from,message,created_time", "order": "reverse_chronological", "filter": "stream"}
    for comment in _newest_first(lambda after: graph.get(f"{target}/comments", _page(params, after)), since):
        if _from_page(comment, page_id) and _same_text(comment.get("message"), reply.text):
            return Delivery(external_id=str(comment.get("id")), sent_at=_time(comment), thread_key=reply.thread_key)
    return None


def message_find(
    graph: GraphClient, page_id: str, psid: str, reply: OutboundReply, *, since: datetime
) -> Delivery | None:
    """The Page's Messenger message to `psid` with the reply's text, or None."""
    found = graph.get(f"{page_id}/conversations", {"platform": "messenger", "user_id": psid, "fields": "id"})
    conversations = [c for c in found.get("data") or [] if isinstance(c, dict) and c.get("id")]
    if not conversations:
        return None  # no conversation with this person at all: nothing reached them
    path = f"{conversations[0]['id']}/messages"
    params = {"fields": "message,from,created_time"}
    for message in _newest_first(lambda after: graph.get(path, _page(params, after)), since):
        if _from_page(message, page_id) and _same_text(message.get("message"), reply.text):
            return Delivery(external_id=str(message.get("id")), sent_at=_time(message), thread_key=reply.thread_key)
    return None


def _newest_first(fetch: Callable[[str | None], dict[str, Any]], since: datetime) -> Iterator[dict[str, Any]]:
    """Items of every page, down to `since` (less the clock margin), following Graph's `after` cursors."""
    oldest = since - CLOCK_MARGIN
    after: str | None = None
    for _ in range(MAX_PAGES):
        body = fetch(after)
        for item in body.get("data") or []:
            if not isinstance(item, dict):
                continue
            when = _time(item)
            if when is not None and when < oldest:
                return
            yield item
        paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
        cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
        after = str(cursors.get("after") or "") if paging.get("next") else ""
        if not after:
            return
    raise PermanentSendError(
        f"Facebook holds more than {MAX_PAGES} pages of replies since this one was queued: whether it was sent "
        "before the sender stopped could not be checked; look on the Page and resend if it is not there"
    )


def _page(params: dict[str, str], after: str | None) -> dict[str, str]:
    return {**params, "limit": PAGE_SIZE, **({"after": after} if after else {})}


def _from_page(item: dict[str, Any], page_id: str) -> bool:
    author = item.get("from")
    return isinstance(author, dict) and str(author.get("id")) == page_id


def _same_text(posted: object, text: str) -> bool:
    return isinstance(posted, str) and posted.strip() == text.strip()


def _time(item: dict[str, Any]) -> datetime | None:
    """Graph's created_time, "2024-03-01T09:30:00+0000"."""
    try:
        return datetime.strptime(str(item["created_time"]), "%Y-%m-%dT%H:%M:%S%z")
    except (KeyError, ValueError):
        return None
