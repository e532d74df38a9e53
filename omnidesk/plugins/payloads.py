"""Reading JSON webhook bodies the way every channel needs: each problem a MalformedPayload. No Django."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .errors import MalformedPayload, UnsupportedMediaType

JSON_TYPES = ("application/json",)


def load_json(body: bytes, *, allow_list: bool = False) -> Any:
    """A JSON object (or list, when allowed) from raw bytes; never anything but MalformedPayload."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise MalformedPayload(f"body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, arrays nested 10,000 deep
        raise MalformedPayload(f"body is not JSON we can read: {exc}") from None
    if isinstance(data, dict) or (allow_list and isinstance(data, list)):
        return data
    wanted = "a JSON object or list" if allow_list else "a JSON object"
    raise MalformedPayload(f"body must be {wanted}, got {type(data).__name__}")


def content_type_check(headers: Mapping[str, str], accepted: tuple[str, ...] = JSON_TYPES) -> None:
    """Refuse a webhook whose Content-Type says it is not what the channel sends.

    A missing Content-Type is let through (the signature and the parser still judge the body);
    a present one must be one of `accepted` (or `application/<anything>+json` when JSON is).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    given = lowered.get("content-type", "").split(";", 1)[0].strip().lower()
    if not given or given in accepted:
        return
    if "application/json" in accepted and given.startswith("application/") and given.endswith("+json"):
        return
    raise UnsupportedMediaType(f"Content-Type {given!r} is not accepted here; send {' or '.join(accepted)}")


def iso_timestamp(data: Mapping[str, Any], key: str, *, required: bool = False) -> datetime | None:
    """An ISO 8601 instant with a time zone, in UTC; None when absent and not required."""
    value = data.get(key)
    if value in (None, ""):
        if required:
            raise MalformedPayload(f"{key}: required")
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
