"""Page feed `changes` (fields `feed`, `mention`, `ratings`) → public messages and their updates.

Vendor quirks handled here:
- the author is `from: {id, name}` in current payloads, `sender_id` / `sender_name` in those of
  Graph v2.5 and before, and absent when Meta withholds it (mentions, some comments);
- ids arrive as strings or as JSON numbers;
- `parent_id` equals `post_id` for a top-level comment and names the parent comment for a reply
  in a comment thread (Meta keeps comment threads two levels deep);
- an edit is verb `edited` for comments and statuses but `edit` for posts; hiding is verb
  `hide`/`unhide`, or in older payloads an edit with `is_hidden`;
- the Page's own posts and comments (our replies included) come through the same feed.
"""

from __future__ import annotations

from typing import Any

from omnidesk.plugins.contract import Author, Ignored, InboundMessage, MessageUpdate, ParsedItem

from .parsing import POST_ITEMS, UNKNOWN_AUTHOR, BadEvent, Json, epoch, ident, identity, opt_ident, text

EDIT_VERBS = frozenset({"edited", "edit", "update"})
REMOVE_VERBS = frozenset({"remove", "delete"})


def change(event: Json, *, page: str, at: str) -> list[ParsedItem]:
    field = event.get("field")
    value = event.get("value")
    if field in ("feed", "mention"):
        if not isinstance(value, dict):
            raise BadEvent(f"{at}.value: must be an object")
        return feed_value(value, page=page, at=at, mention=field == "mention")
    if field == "ratings":
        return [Ignored("rating", f"a Page recommendation or a comment on one ({_describe(value)}); not a ticket")]
    return [Ignored("unknown", f"{at}: Page field {field!r} is not handled")]


def feed_value(value: Json, *, page: str, at: str, mention: bool = False) -> list[ParsedItem]:
    item, verb = _word(value, "item", at), _word(value, "verb", at)
    author_id, author_name = _author(value, at)
    if item in ("reaction", "like"):
        target = value.get("comment_id") or value.get("post_id") or "?"
        kind = value.get("reaction_type") or "like"
        return [Ignored("reaction", f"{kind} {verb or 'add'} on {target} by {author_name or author_id or 'someone'}")]
    if item == "comment":
        object_id = ident(value.get("comment_id"), f"{at}.value.comment_id")
    elif item in POST_ITEMS:
        object_id = ident(value.get("post_id"), f"{at}.value.post_id")
    else:
        return [Ignored("unknown", f"{at}: feed item {item!r} ({verb}) is not handled")]
    post_id = opt_ident(value.get("post_id"), f"{at}.value.post_id") or object_id
    is_post = item != "comment"
    by_page = bool(author_id) and author_id == page and not mention
    if by_page and (is_post or verb == "add"):
        # The Page's posts and our own comment replies come back through the feed. Changes to a
        # comment are applied whoever Meta names: they can only touch a customer's message.
        what = "post" if is_post else "comment"
        return [Ignored("page_post", f"the Page's own {what} {object_id} ({verb}); not a customer message")]
    when = epoch(value.get("created_time"), millis=False)
    if verb in REMOVE_VERBS:
        return [MessageUpdate(object_id, "removed", at=when)]
    if verb == "hide" or (verb in EDIT_VERBS and value.get("is_hidden") is True):
        return [MessageUpdate(object_id, "hidden", at=when)]
    if verb == "unhide":
        return [MessageUpdate(object_id, "unhidden", at=when)]
    if verb in EDIT_VERBS:
        return [MessageUpdate(object_id, "edited", text=_body(value, at), at=when)]
    if verb != "add":
        return [Ignored("unknown", f"{at}: feed verb {verb!r} on a {item} is not handled")]
    parent = opt_ident(value.get("parent_id"), f"{at}.value.parent_id")
    metadata = [("page_id", page), ("post_id", post_id), ("permalink", f"https://www.facebook.com/{object_id}")]
    metadata += _media(value, at)
    if not author_id:
        metadata.append(("author_unknown", "Meta did not say who wrote this"))
    message = InboundMessage(
        external_id=object_id,
        event_type="mention" if mention else ("comment" if item == "comment" else "visitor_post"),
        thread_key=f"post:{post_id}",
        author=Author(
            identity=identity(author_id or f"unknown:{object_id}", page),
            display_name=author_name or UNKNOWN_AUTHOR,
        ),
        text=_body(value, at) or f"[a {'mention' if mention else item} without text: see the permalink]",
        visibility="public",
        # A reply in a comment thread answers its parent comment (perhaps our own reply).
        references=(parent,) if parent and parent not in (post_id, object_id) else (),
        sent_at=when,
        metadata=tuple(metadata),
    )
    if value.get("is_hidden") is True:  # hidden on arrival by the Page's moderation filters
        return [message, MessageUpdate(object_id, "hidden", at=when)]
    return [message]


def _word(value: Json, key: str, at: str) -> str | None:
    """`item` / `verb`: a word or absent; anything else (an object, a list) is not Meta's."""
    word = value.get(key)
    if word is not None and not isinstance(word, str):
        raise BadEvent(f"{at}.value.{key}: must be text, got {type(word).__name__}")
    return word


def _author(value: Json, at: str) -> tuple[str, str]:
    sender = value.get("from")
    if isinstance(sender, dict):
        return opt_ident(sender.get("id"), f"{at}.value.from.id"), text(sender.get("name"), f"{at}.value.from.name", 200)
    if sender is not None:
        raise BadEvent(f"{at}.value.from: must be an object")
    return (
        opt_ident(value.get("sender_id"), f"{at}.value.sender_id"),
        text(value.get("sender_name"), f"{at}.value.sender_name", 200),
    )


def _media(value: Json, at: str) -> list[tuple[str, str]]:
    """Photo and video links of a comment or post. Kept as links: webhooks carry no bytes."""
    found: list[tuple[str, str]] = []
    for key in ("photo", "video", "link"):
        url = text(value.get(key), f"{at}.value.{key}", 2000)
        if url:
            found.append((key, url))
    photos = value.get("photos")
    if isinstance(photos, list):
        found += [("photo", p[:2000]) for p in photos if isinstance(p, str) and p]
    return found


def _body(value: Json, at: str) -> str:
    lines = [text(value.get("message"), f"{at}.value.message")]
    lines += [f"[{kind}] {url}" for kind, url in _media(value, at)]
    return "\n".join(line for line in lines if line)


def _describe(value: Any) -> str:
    if not isinstance(value, dict):
        return "no details"
    return f"{value.get('item', '?')} {value.get('verb', '?')}"
