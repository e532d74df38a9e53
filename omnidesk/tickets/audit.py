"""Writing the append-only audit trail."""

from __future__ import annotations

from typing import Any

from .models import Message, Ticket, TicketEvent


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
    return TicketEvent.objects.create(
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
