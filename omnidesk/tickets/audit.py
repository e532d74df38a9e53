"""Writing the append-only audit trail."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from django.db.models import F
from django.utils import timezone

from omnidesk.rows import rows_insert

from .models import Message, Ticket, TicketEvent

#: rows collected for one INSERT at the end of an apply batch (see `ticket_events_deferred`)
_deferred: contextvars.ContextVar[list[TicketEvent] | None] = contextvars.ContextVar("ticket_events", default=None)


def ticket_event_record(
    *,
    ticket: Ticket,
    action: str,
    actor: str = TicketEvent.Actor.SYSTEM,
    actor_user: Any = None,
    field: str = "",
    old: Any = None,
    new: Any = None,
    message: Message | None = None,
    note: str = "",
) -> TicketEvent:
    event = TicketEvent.objects.create(
        ticket=ticket,
        action=action,
        actor=actor,
        actor_user=actor_user,
        field=field,
        old=old,
        new=new,
        message=message,
        note=note[:500],
    )
    if event.is_transfer:
        # counted on the ticket for the parity report; in memory first (a deferred field loads the count
        # before it changes), so a later save() of the whole row keeps it
        ticket.transfer_count += 1
        Ticket.objects.filter(pk=ticket.pk).update(transfer_count=F("transfer_count") + 1)
    return event


@contextlib.contextmanager
def ticket_events_deferred() -> Iterator[None]:
    """Within this block (an apply batch under one savepoint) `ticket_events_add` collects its rows
    and they are written in one INSERT when the block ends; nothing is written when it raises.

    Nothing in the apply reads the rows it defers (a message's arrival, a new ticket's SLA
    announcements), and each keeps the time it was added, so the trail's order stays the same.
    """
    rows: list[TicketEvent] = []
    token = _deferred.set(rows)
    try:
        yield
    finally:
        _deferred.reset(token)
    rows_insert(rows, stamp=False)


def ticket_events_add(rows: list[TicketEvent]) -> None:
    """Write audit rows now, or with the batch's INSERT inside `ticket_events_deferred`."""
    deferred = _deferred.get()
    if deferred is None:
        rows_insert(rows)
        return
    now = timezone.now()
    for row in rows:
        row.at = now
    deferred += rows
