"""Meta's Page webhook bodies → contract items: the object, its entries, and their events.

One POST may carry several entries (pages, times) and each entry several events: a Page feed
entry has `changes`, a Messenger entry `messaging` (or `standby` under the handover protocol).
Everything understood becomes an item; a part we do not know becomes `Ignored("unknown")`,
and only a payload of which nothing is understood raises UnsupportedEvent. One broken event
becomes `Invalid` so the rest of the batch still applies. The feed's events are read in
`feed.py`, Messenger's in `messenger.py`; the small readers they share are below.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from omnidesk.plugins.payloads import load_json
from omnidesk.plugins.contract import (
    Ignored,
    IdentityKind,
    IdentityRef,
    Invalid,
    MalformedPayload,
    ParsedItem,
    UnsupportedEvent,
)

Json = dict[str, Any]

#: Page feed items that are posts of one kind or another (a status, a photo, a shared link...)
POST_ITEMS = frozenset({"post", "status", "photo", "video", "share", "link", "event", "note", "album", "story"})
#: a commenter Meta did not name: each such message gets its own identity, never a shared one
UNKNOWN_AUTHOR = "Facebook user"


class BadEvent(Exception):
    """One event of a batch is not what Meta sends; it becomes an Invalid item."""


def load(body: bytes) -> Json:
    return load_json(body)  # type: ignore[no-any-return]


def parse_payload(data: Json) -> list[ParsedItem]:
    """Every entry and event of one webhook body, in order."""
    from . import feed, messenger

    obj = data.get("object")
    if obj != "page":
        raise UnsupportedEvent(f"object {obj!r} is not a Facebook Page webhook (expected 'page')")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise MalformedPayload("entry: must be a list of entries")
    items: list[ParsedItem] = []
    for n, entry in enumerate(entries):
        where = f"entry[{n}]"
        if not isinstance(entry, dict):
            items.append(Invalid(where, "an entry must be an object"))
            continue
        try:
            page = ident(entry.get("id"), f"{where}.id")
        except BadEvent as exc:
            items.append(Invalid(where, str(exc)))
            continue
        known = False
        for key, handler in (("changes", feed.change), ("messaging", messenger.event), ("standby", messenger.standby)):
            events = entry.get(key)
            if events is None:
                continue
            known = True
            if not isinstance(events, list):
                items.append(Invalid(f"{where}.{key}", "must be a list"))
                continue
            for i, event in enumerate(events):
                at = f"{where}.{key}[{i}]"
                try:
                    if not isinstance(event, dict):
                        raise BadEvent("an event must be an object")
                    items.extend(handler(event, page=page, at=at))
                except BadEvent as exc:
                    items.append(Invalid(at, str(exc)))
        if not known:
            extra = sorted(k for k in entry if k not in ("id", "time", "uid"))
            items.append(Ignored("unknown", f"{where}: nothing we read in this entry (keys: {', '.join(extra) or 'none'})"))
    if items and all(isinstance(i, Ignored) and i.event_type == "unknown" for i in items):
        raise UnsupportedEvent("nothing in this webhook is a Page feed or Messenger event we handle: "
                               + "; ".join(i.reason for i in items if isinstance(i, Ignored))[:500])
    return items


# --- small readers: each raises BadEvent with the path of what was wrong -------------------


def ident(value: object, where: str) -> str:
    """A Graph id. Meta sends ids as strings, and in older payloads as JSON numbers."""
    if isinstance(value, bool) or value is None:
        raise BadEvent(f"{where}: required id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 200:
        return value.strip()
    raise BadEvent(f"{where}: must be an id, got {type(value).__name__}")


def opt_ident(value: object, where: str) -> str:
    return "" if value is None or value == "" else ident(value, where)


def obj(event: Json, key: str, where: str) -> Json:
    value = event.get(key)
    if not isinstance(value, dict):
        raise BadEvent(f"{where}.{key}: must be an object")
    return value


def text(value: object, where: str, limit: int = 64_000) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadEvent(f"{where}: must be text, got {type(value).__name__}")
    return value[:limit]


def epoch(value: object, *, millis: bool) -> datetime | None:
    """A Meta timestamp: seconds in the feed, milliseconds in Messenger. None when absurd or absent.

    The core falls back to the receipt time when a channel gives none, so a garbled clock never
    fails an event.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        if isinstance(value, str):
            try:  # the Graph's own format, "2016-07-07T12:00:00+0000"
                parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
            except ValueError:
                return None
            return parsed.astimezone(timezone.utc)
        return None
    try:
        return datetime.fromtimestamp(value / 1000 if millis else value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def identity(value: str, page: str) -> IdentityRef:
    """Page-scoped ids are only unique within their page: the page id is the namespace."""
    return IdentityRef(IdentityKind.FACEBOOK, value, namespace=page)
