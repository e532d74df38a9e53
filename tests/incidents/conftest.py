"""Helpers of the incident tests: customer messages through the generic API channel's real pipeline."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pytest

from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
from omnidesk.plugins.contract import RawEvent

_ids = itertools.count(1)


def api_message_body(text: str, at: datetime, *, author: str | None = None, public: bool = False) -> bytes:
    n = next(_ids)
    return json.dumps({
        "id": f"msg-{n}", "thread": f"thread-{n}", "author": {"id": author or f"person-{n}", "name": f"Person {n}"},
        "text": text, "sent_at": at.isoformat(), "public": public,
    }).encode()


@pytest.fixture
def say(api_account) -> Callable[..., list[int]]:  # type: ignore[no-untyped-def]
    """say([(text, sent_at), ...]): customers write on the API channel; returns the new tickets' ids."""
    from omnidesk.tickets.models import Message

    def write(messages: Sequence[tuple[str, datetime]], **options: Any) -> list[int]:
        before = Message.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        for text, at in messages:
            inbound_event_store(account=api_account, raw=RawEvent(body=api_message_body(text, at, **options)))
        while inbound_events_apply(limit=200).applied:
            pass
        return list(Message.objects.filter(pk__gt=before).order_by("pk").values_list("ticket_id", flat=True))

    return write
