"""What the database can store: every string a plugin hands the core, without NUL characters.

PostgreSQL's text and jsonb cannot hold U+0000 (psycopg raises DataError), so one NUL in a
tweet, a JSON payload or a mail header would fail its event again on every retry and the
complaint would never become a ticket. The core replaces each NUL with U+FFFD, the replacement
character: the agent sees that something was there, and two ids that differ only by a NUL
stay distinct. Bytes (attachments, raw bodies) are stored as bytes and left alone.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

T = TypeVar("T")

NUL = "\x00"
REPLACEMENT = "\ufffd"


def storable_text(text: str) -> str:
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def storable(value: T) -> T:
    """`value` (a parsed item, or anything inside one) with every NUL in its strings replaced.

    Whatever holds no NUL is returned as the same object, so the common case copies nothing.
    """
    if isinstance(value, str):
        return storable_text(value)  # type: ignore[return-value]  # str enums come back as they are
    if isinstance(value, tuple):
        cleaned = tuple(storable(v) for v in value)
        return value if all(a is b for a, b in zip(cleaned, value)) else cleaned  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for field in dataclasses.fields(value):
            old = getattr(value, field.name)
            new = storable(old)
            if new is not old:
                changes[field.name] = new
        return dataclasses.replace(value, **changes) if changes else value  # type: ignore[type-var]
    return value
