"""Query-string filters of the ticket and customer lists: a bad value is a 400 that says why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.exceptions import APIException

from omnidesk.customers.models import Customer
from omnidesk.tickets.models import Ticket


class BadFilter(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_filter"
    default_detail = "a filter value is not valid"


def _choices(params: Mapping[str, str], name: str, allowed: list[str]) -> list[str] | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    wrong = [v for v in values if v not in allowed]
    if wrong:
        raise BadFilter(f"{name}: unknown value {', '.join(map(repr, wrong))}; use one of {', '.join(allowed)}")
    return values


def _id_or_none(params: Mapping[str, str], name: str, user: Any) -> tuple[bool, int | None]:
    """(given, value): value None means the filter asks for 'none'."""
    raw = (params.get(name) or "").strip()
    if not raw:
        return False, None
    if raw.lower() == "none":
        return True, None
    if name == "assignee" and raw.lower() == "me":
        return True, user.pk
    if not raw.isdigit():
        extra = ", 'me'" if name == "assignee" else ""
        raise BadFilter(f"{name}: {raw!r} is not an id; use a number, 'none'{extra}")
    return True, int(raw)


def ticket_filter(qs: QuerySet[Ticket], *, params: Mapping[str, str], user: Any) -> QuerySet[Ticket]:
    statuses = _choices(params, "status", list(Ticket.Status.values))
    if statuses:
        qs = qs.filter(status__in=statuses)
    priorities = _choices(params, "priority", list(Ticket.Priority.values))
    if priorities:
        qs = qs.filter(priority__in=priorities)
    channel = (params.get("channel") or "").strip()
    if channel:
        kinds = [k.strip() for k in channel.split(",") if k.strip()]
        bad = [k for k in kinds if not k.replace("_", "").replace("-", "").isalnum()]
        if bad:
            raise BadFilter(f"channel: {', '.join(map(repr, bad))} is not a channel kind (such as 'email' or 'api')")
        qs = qs.filter(origin_account__kind__in=kinds)
    for name in ("assignee", "group"):
        given, value = _id_or_none(params, name, user)
        if given:
            qs = qs.filter(**({f"{name}__isnull": True} if value is None else {f"{name}_id": value}))
    return qs.order_by("-updated_at", "-pk")


TICKET_FILTERS = [
    OpenApiParameter("status", OpenApiTypes.STR, description="comma-separated: " + ", ".join(Ticket.Status.values)),
    OpenApiParameter("priority", OpenApiTypes.STR, description="comma-separated: " + ", ".join(Ticket.Priority.values)),
    OpenApiParameter("channel", OpenApiTypes.STR, description="comma-separated plugin kinds of the origin account"),
    OpenApiParameter("assignee", OpenApiTypes.STR, description="a user id, 'me', or 'none' for unassigned"),
    OpenApiParameter("group", OpenApiTypes.STR, description="a group id, or 'none' for no group"),
]


def customer_filter(qs: QuerySet[Customer], *, params: Mapping[str, str]) -> QuerySet[Customer]:
    search = (params.get("search") or "").strip()
    if search:
        if len(search) > 320:
            raise BadFilter("search: at most 320 characters")
        match = Q(display_name__icontains=search) | Q(identities__value__icontains=search)
        qs = qs.filter(pk__in=Customer.objects.filter(match).values("pk"))
    return qs.order_by("-pk")


CUSTOMER_FILTERS = [
    OpenApiParameter("search", OpenApiTypes.STR, description="part of a name, email, phone or channel id"),
]
