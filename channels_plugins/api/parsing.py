"""The generic JSON body, validated field by field so a sender learns exactly what was wrong."""

from __future__ import annotations

from typing import Any

from omnidesk.plugins.contract import MalformedPayload, StatusSignal, UnsupportedEvent
from omnidesk.plugins.payloads import iso_timestamp, load_json

MAX_TEXT = 100_000


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




def load_object(body: bytes) -> dict[str, Any]:
    return load_json(body)  # type: ignore[no-any-return]


timestamp = iso_timestamp


STATUS_LEVELS = ("investigating", "identified", "monitoring", "resolved")


def status_signal(data: dict[str, Any]) -> StatusSignal:
    """`{"type": "status", "id", "incident", "status", "title", "text", "components", "at"}` (doc.md)."""
    level = text(data, "status", limit=20)
    if level not in STATUS_LEVELS:
        raise MalformedPayload(f"status: must be one of {', '.join(STATUS_LEVELS)}, got {level!r}")
    components = data.get("components", [])
    if not isinstance(components, list) or not all(isinstance(c, str) and 0 < len(c) <= 200 for c in components):
        raise MalformedPayload("components: must be a list of names (strings up to 200 characters)")
    if len(components) > 50:
        raise MalformedPayload(f"components: {len(components)} is over the limit of 50")
    at = timestamp(data, "at")
    return StatusSignal(
        external_id=text(data, "id", limit=300),
        incident_key=text(data, "incident", limit=300),
        status=level,  # type: ignore[arg-type]
        title=text(data, "title", limit=200),
        text=text(data, "text", required=False, limit=MAX_TEXT),
        components=tuple(components),
        at=at,
    )
