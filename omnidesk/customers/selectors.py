"""Reading customers, scoped like tickets: an agent sees the customers of tickets they may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from omnidesk.routing.selectors import user_is_manager

from .models import Customer


def customer_list_for_user(*, user: Any) -> QuerySet[Customer]:
    """Managers see every customer; agents those with a ticket in one of their groups; others none."""
    from omnidesk.tickets.selectors import ticket_list_for_user

    qs = Customer.objects.prefetch_related("identities")
    if user_is_manager(user):
        return qs
    return qs.filter(pk__in=ticket_list_for_user(user=user).values("customer_id"))
