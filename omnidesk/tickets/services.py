"""Agents changing a ticket's status, priority, group or assignee, each change in the audit trail."""

from __future__ import annotations

import enum
from typing import Any

from django.db import transaction
from django.utils import timezone

from omnidesk.sla.services import sla_recompute

from .audit import ticket_event_record
from .models import Ticket, TicketEvent


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET

#: statuses a solved ticket may move to while keeping its solved_at
_AFTER_SOLVED = {Ticket.Status.SOLVED, Ticket.Status.CLOSED}


class TicketChangeInvalid(ValueError):
    """A change the desk refuses; the message says why, for the agent."""


def ticket_update(
    *,
    ticket: Ticket,
    user: Any,
    status: str | _Unset = UNSET,
    priority: str | _Unset = UNSET,
    group: Any | None | _Unset = UNSET,
    assignee: Any | None | _Unset = UNSET,
) -> Ticket:
    """Apply the given changes under a row lock; fields left UNSET are not touched.

    Solving stamps solved_at, reopening (to new/open/pending/on_hold) clears it; closing stamps
    closed_at (and solved_at if the ticket skipped solved), leaving closed clears closed_at.
    SLA deadlines are recomputed whenever status, priority or group change.
    """
    if status is not UNSET and status not in Ticket.Status.values:
        raise TicketChangeInvalid(f"unknown status {status!r}; use one of {', '.join(Ticket.Status.values)}")
    if priority is not UNSET and priority not in Ticket.Priority.values:
        raise TicketChangeInvalid(f"unknown priority {priority!r}; use one of {', '.join(Ticket.Priority.values)}")
    actor_user = user if getattr(user, "is_authenticated", False) else None
    now = timezone.now()
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
        team_before = locked.group_id
        changed: list[str] = []

        def record(field: str, old: Any, new: Any, note: str = "") -> None:
            ticket_event_record(
                ticket=locked, action=f"{field}_changed", actor=TicketEvent.Actor.AGENT, actor_user=actor_user,
                field=field, old=old, new=new, note=note,
            )

        if status is not UNSET and status != locked.status:
            old = locked.status
            locked.status = status
            changed += ["status", *_stamp_status(locked, old, status, now)]
            record("status", old, status)
        if priority is not UNSET and priority != locked.priority:
            record("priority", locked.priority, priority)
            locked.priority = priority
            changed.append("priority")
        if group is not UNSET and _pk(group) != locked.group_id:
            record("group", locked.group_id, _pk(group), f"group {_name(locked.group)} → {_name(group)}")
            locked.group = group
            changed.append("group")
        if assignee is not UNSET and _pk(assignee) != locked.assignee_id:
            record("assignee", locked.assignee_id, _pk(assignee), f"assignee {_name(locked.assignee)} → {_name(assignee)}")
            locked.assignee = assignee
            changed.append("assignee")
        if {"status", "priority", "group"} & set(changed):
            # pending pauses the resolution clock, solved stops it; priority and group pick the policy.
            # Its UPDATE writes our changes too: one statement, not two (a solve in bench/load.py)
            sla_recompute(ticket=locked, now=now, also_save=changed)
        elif changed:
            locked.save(update_fields=[*changed, "updated_at"])
        if changed:
            ticket_id, teams = locked.pk, list(dict.fromkeys([locked.group_id, team_before]))
            transaction.on_commit(lambda: _broadcast(ticket_id, teams))
    return locked


def _stamp_status(ticket: Ticket, old: str, new: str, now: Any) -> list[str]:
    fields = []
    if new == Ticket.Status.SOLVED or (new == Ticket.Status.CLOSED and ticket.solved_at is None):
        ticket.solved_at = now
        fields.append("solved_at")
    elif new not in _AFTER_SOLVED and ticket.solved_at is not None:
        ticket.solved_at = None
        fields.append("solved_at")
    if new == Ticket.Status.CLOSED:
        ticket.closed_at = now
        fields.append("closed_at")
    elif old == Ticket.Status.CLOSED and ticket.closed_at is not None:
        ticket.closed_at = None
        fields.append("closed_at")
    return fields


def _pk(obj: Any) -> int | None:
    return None if obj is None else obj.pk


def _name(obj: Any) -> str:
    if obj is None:
        return "none"
    return obj.get_username() if hasattr(obj, "get_username") else str(obj)


def _broadcast(ticket_id: int, teams: list[int | None]) -> None:
    """Tell the ticket's team as it was saved (tickets_changed would otherwise read it again) and,
    when it moved, the team it left: their queues drop it (the row is no longer theirs to fetch)."""
    from omnidesk.workspace import live

    for team in teams:
        live.tickets_changed({ticket_id: "updated"}, teams={ticket_id: team})
