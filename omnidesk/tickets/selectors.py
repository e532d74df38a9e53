"""Reading tickets, always scoped to what the user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from omnidesk.routing.selectors import user_group_ids, user_is_manager

from .models import Message, Ticket


def ticket_list_for_user(*, user: Any) -> QuerySet[Ticket]:
    """Managers see every ticket; agents only their groups' tickets; anyone else nothing."""
    qs = Ticket.objects.select_related("customer", "origin_account", "assignee", "group")
    if user_is_manager(user):
        return qs
    groups = user_group_ids(user)
    if not groups:
        return qs.none()
    return qs.filter(group_id__in=groups)


def ticket_messages(*, ticket: Ticket) -> QuerySet[Message]:
    return (
        Message.objects.filter(ticket=ticket)
        .select_related("author_identity", "author_user", "account", "outbound")
        .prefetch_related("attachments")
        .order_by("sent_at", "pk")
    )
