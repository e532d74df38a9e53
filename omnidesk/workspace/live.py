"""Live updates: group names and payload shapes, in one place."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

MANAGERS = "desk.managers"


def group_for_team(group_id: int) -> str:
    return f"desk.group.{group_id}"


def ticket_payload(ticket_id: int, change: str) -> dict:
    return {"type": "ticket.changed", "ticket": ticket_id, "change": change}


def tickets_changed(changes: dict[int, str]) -> None:
    """Tell every agent who may see these tickets. Never raises: live updates are best effort."""
    from omnidesk.tickets.models import Ticket

    try:
        layer = get_channel_layer()
        if layer is None:
            return
        groups = dict(Ticket.objects.filter(pk__in=list(changes)).values_list("pk", "group_id"))
        send = async_to_sync(layer.group_send)
        for ticket_id, change in changes.items():
            payload = ticket_payload(ticket_id, change)
            send(MANAGERS, payload)
            if groups.get(ticket_id):
                send(group_for_team(groups[ticket_id]), payload)
    except Exception as exc:  # noqa: BLE001
        log.warning("live update of %d ticket(s) not delivered: %s", len(changes), exc)
