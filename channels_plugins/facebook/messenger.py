"""Messenger `messaging` / `standby` events → private messages, receipts and updates.

Vendor quirks handled here:
- timestamps and watermarks are milliseconds (the feed's are seconds);
- attachments carry only URLs on Meta's CDN, which expire: nothing is downloaded here (parse is
  pure), the links go into the text ("[image] <url>") and the metadata;
- a sticker is an image attachment with a `sticker_id`; 369239263222822 and its two larger
  variants are the "like" thumb the Messenger send button produces;
- `read` names no message: it carries a watermark, every message we sent before it is read;
  `delivery` lists the mids it can and a watermark too;
- `is_echo` messages are the Page's own sends (ours, or from Meta Business Suite) coming back;
- `standby` holds events of conversations another app controls (handover protocol).
"""

from __future__ import annotations

from omnidesk.plugins.contract import (
    Author,
    DeliveryUpdate,
    Ignored,
    InboundMessage,
    MessageUpdate,
    ParsedItem,
)

from .parsing import BadEvent, Json, epoch, ident, identity, obj, text

LIKE_STICKERS = frozenset({"369239263222822", "369239343222814", "369239383222810"})
HANDOVER = ("pass_thread_control", "take_thread_control", "request_thread_control", "app_roles")
UNSUPPORTED_TEXT = "[a message Messenger does not pass on to apps: open the conversation in Meta Business Suite]"


def event(ev: Json, *, page: str, at: str) -> list[ParsedItem]:
    when = epoch(ev.get("timestamp"), millis=True)
    if "message" in ev:
        msg = obj(ev, "message", at)
        mid = ident(msg.get("mid"), f"{at}.message.mid")
        if msg.get("is_echo") is True:
            return [Ignored("echo", f"the Page's own message {mid} echoed back by Messenger")]
        psid = _sender(ev, at)
        if msg.get("is_deleted") is True:
            return [MessageUpdate(mid, "removed", at=when)]
        return [_message(msg, mid=mid, psid=psid, page=page, when=when, at=at)]
    if "message_edit" in ev:
        edit = obj(ev, "message_edit", at)
        mid = ident(edit.get("mid"), f"{at}.message_edit.mid")
        return [MessageUpdate(mid, "edited", text=text(edit.get("text"), f"{at}.message_edit.text"), at=when)]
    if "read" in ev:
        read = obj(ev, "read", at)
        psid = _sender(ev, at)
        return [_watermark("read", read, psid=psid, page=page, when=when, at=f"{at}.read")]
    if "delivery" in ev:
        delivery = obj(ev, "delivery", at)
        psid = _sender(ev, at)
        mids = delivery.get("mids") or []
        if not isinstance(mids, list):
            raise BadEvent(f"{at}.delivery.mids: must be a list")
        # Delivery events carry no timestamp of their own: the watermark is when it happened.
        when = when or epoch(delivery.get("watermark"), millis=True)
        items: list[ParsedItem] = [
            DeliveryUpdate(ident(m, f"{at}.delivery.mids[{i}]"), "delivered", at=when) for i, m in enumerate(mids)
        ]
        if delivery.get("watermark") is not None:
            items.append(_watermark("delivered", delivery, psid=psid, page=page, when=when, at=f"{at}.delivery"))
        return items
    if "postback" in ev:
        return [_postback(obj(ev, "postback", at), ev, psid=_sender(ev, at), page=page, when=when, at=at)]
    if "reaction" in ev:
        reaction = obj(ev, "reaction", at)
        what = reaction.get("reaction") or reaction.get("emoji") or "a reaction"
        return [Ignored("messenger_reaction", f"{what} {reaction.get('action', 'react')} on message {reaction.get('mid', '?')}")]
    if "referral" in ev:
        ref = obj(ev, "referral", at)
        return [Ignored("referral", f"a person opened the conversation from {ref.get('source', '?')} "
                                    f"({ref.get('type', '?')}, ref {ref.get('ref', '')!r}); no message yet")]
    if "optin" in ev:
        return [Ignored("optin", f"a person opted in (ref {obj(ev, 'optin', at).get('ref', '')!r}); no message yet")]
    for key in ("policy-enforcement", "policy_enforcement"):
        if key in ev:
            policy = obj(ev, key, at)
            return [Ignored("policy_enforcement", f"Meta applied '{policy.get('action', '?')}' to this Page's "
                                                  f"messaging: {policy.get('reason', 'no reason given')}")]
    for key in HANDOVER:
        if key in ev:
            return [Ignored("handover", f"{key}: conversation control moved between apps (handover protocol)")]
    keys = sorted(k for k in ev if k not in ("sender", "recipient", "timestamp"))
    return [Ignored("unknown", f"{at}: Messenger event with {', '.join(keys) or 'no content'} is not handled")]


def standby(ev: Json, *, page: str, at: str) -> list[ParsedItem]:
    """Events of conversations another app owns: seen, counted, left to that app."""
    msg = ev.get("message")
    if isinstance(msg, dict) and msg.get("is_echo") is True:
        return [Ignored("echo", f"the Page's own message {msg.get('mid', '?')} echoed back (standby)")]
    keys = sorted(k for k in ev if k not in ("sender", "recipient", "timestamp"))
    return [Ignored("standby", f"{', '.join(keys) or 'event'} in a conversation another app controls "
                               "(handover protocol); that app answers it")]


def _sender(ev: Json, at: str) -> str:
    return ident(obj(ev, "sender", at).get("id"), f"{at}.sender.id")


def _watermark(state: str, receipt: Json, *, psid: str, page: str, when: object, at: str) -> DeliveryUpdate:
    raw = receipt.get("watermark")
    watermark = epoch(raw, millis=True)
    if watermark is None:
        raise BadEvent(f"{at}.watermark: must be a time in milliseconds, got {raw!r}")
    return DeliveryUpdate(
        external_id=f"{state}:{psid}:{raw}",  # names no message: the watermark form applies
        state=state,  # type: ignore[arg-type]
        at=when if when is not None else watermark,  # type: ignore[arg-type]
        recipient=identity(psid, page),
        watermark=watermark,
    )


def _message(msg: Json, *, mid: str, psid: str, page: str, when: object, at: str) -> InboundMessage:
    lines = [text(msg.get("text"), f"{at}.message.text")]
    metadata: list[tuple[str, str]] = [("page_id", page)]
    attachments = msg.get("attachments") or []
    if not isinstance(attachments, list):
        raise BadEvent(f"{at}.message.attachments: must be a list")
    for n, att in enumerate(attachments, 1):
        if not isinstance(att, dict):
            raise BadEvent(f"{at}.message.attachments[{n - 1}]: must be an object")
        kind, line, url = _attachment(att, msg)
        lines.append(line)
        metadata.append((f"attachment_{n}_type", kind))
        if url:
            metadata.append((f"attachment_{n}_url", url))
    quick = msg.get("quick_reply")
    if isinstance(quick, dict) and isinstance(quick.get("payload"), str):
        metadata.append(("quick_reply_payload", quick["payload"][:1000]))
    references: tuple[str, ...] = ()
    reply_to = msg.get("reply_to")
    if isinstance(reply_to, dict):
        if reply_to.get("mid") is not None:
            references = (ident(reply_to.get("mid"), f"{at}.message.reply_to.mid"),)
        story = reply_to.get("story")
        if isinstance(story, dict):
            url = text(story.get("url"), f"{at}.message.reply_to.story.url", 2000)
            lines.insert(0, f"[replied to the Page's story] {url}".strip())
            metadata += [("reply_to_story_url", url), ("reply_to_story_id", str(story.get("id", ""))[:200])]
    referral = msg.get("referral")
    if isinstance(referral, dict):
        metadata.append(("referral", f"{referral.get('source', '?')} {referral.get('ref', '')}".strip()[:500]))
    body = "\n".join(line for line in lines if line)
    if msg.get("is_unsupported") is True:
        body = body or UNSUPPORTED_TEXT
        metadata.append(("unsupported", "true"))
    return InboundMessage(
        external_id=mid,
        event_type="message",
        thread_key=f"psid:{psid}",
        author=Author(identity(psid, page)),
        text=body or "[an empty Messenger message]",
        visibility="private",
        references=references,
        sent_at=when,  # type: ignore[arg-type]
        metadata=tuple(metadata),
    )


def _attachment(att: Json, msg: Json) -> tuple[str, str, str]:
    """(type, the line shown in the text, url) of one attachment. Links only: nothing is fetched."""
    kind = str(att.get("type") or "attachment")[:40]
    payload = att.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    url = att.get("url") if isinstance(att.get("url"), str) else payload.get("url")
    url = url[:2000] if isinstance(url, str) else ""
    if kind == "location":
        coords = payload.get("coordinates") if isinstance(payload.get("coordinates"), dict) else {}
        lat, lon = coords.get("lat"), coords.get("long")
        return kind, f"[location] {lat}, {lon}", url
    sticker = payload.get("sticker_id", msg.get("sticker_id"))
    if sticker is not None and not isinstance(sticker, (dict, list)):
        kind = "sticker"
        if str(sticker) in LIKE_STICKERS:
            return kind, f"[like 👍] {url}".strip(), url
        return kind, f"[sticker] {url}".strip(), url
    if kind == "fallback":
        title = att.get("title") if isinstance(att.get("title"), str) else ""
        return kind, " ".join(p for p in ("[link]", title[:300], url) if p), url
    title = payload.get("title") if isinstance(payload.get("title"), str) else ""
    return kind, " ".join(p for p in (f"[{kind}]", title[:300], url) if p), url


def _postback(pb: Json, ev: Json, *, psid: str, page: str, when: object, at: str) -> InboundMessage:
    """A button tap is the customer speaking (and restarts the 24-hour window), so it is a message."""
    payload = text(pb.get("payload"), f"{at}.postback.payload", 1000)
    title = text(pb.get("title"), f"{at}.postback.title", 300)
    # Older postbacks have no mid: the sender and the platform's timestamp identify the tap.
    mid = pb.get("mid")
    external_id = ident(mid, f"{at}.postback.mid") if mid else f"postback:{psid}:{ev.get('timestamp')}"
    return InboundMessage(
        external_id=external_id,
        event_type="postback",
        thread_key=f"psid:{psid}",
        author=Author(identity(psid, page)),
        text=f"[tapped] {title}" if title else f"[tapped a button] {payload}",
        visibility="private",
        sent_at=when,  # type: ignore[arg-type]
        metadata=(("page_id", page), ("postback_payload", payload)),
    )
