"""The generic JSON body, validated field by field so a sender learns exactly what was wrong."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from omnidesk.plugins.contract import MalformedPayload, UnsupportedEvent

MAX_TEXT = 100_000


def load_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise MalformedPayload(f"body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, arrays nested 10,000 deep
        raise MalformedPayload(f"body is not JSON we can read: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedPayload(f"body must be a JSON object, got {type(data).__name__}")
    return data


def event_type(data: dict[str, Any], known: set[str]) -> str:
    kind = data.get("type", "message")
    if not isinstance(kind, str) or kind not in known:
        raise UnsupportedEvent(f"event type {kind!r} is not one of: {', '.join(sorted(known))}")
    return kind


def text(data: dict[str, Any], key: str, *, required: bool = True, limit: int = 1000, path: str = "") -> str:
    value = data.get(key)
    where = f"{path}{key}"
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"{where}: required")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ("id", "thread"):
        value = str(value)  # numeric ids from other systems are common
    if not isinstance(value, str):
        raise MalformedPayload(f"{where}: must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise MalformedPayload(f"{where}: {len(value)} characters is over the limit of {limit}")
    return value


def obj(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise MalformedPayload(f"{key}: required object" if value is None else f"{key}: must be an object")
    return value


def boolean(data: dict[str, Any], key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise MalformedPayload(f"{key}: must be true or false, got {value!r}")
    return value


def timestamp(data: dict[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"{key}: must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedPayload(f"{key}: {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise MalformedPayload(f"{key}: {value!r} has no time zone (add Z or +hh:mm)")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past the last representable instant
        raise MalformedPayload(f"{key}: {value!r} is out of range") from None
