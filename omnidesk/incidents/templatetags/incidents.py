"""{% incident_banner %}: the open incidents with live counts per channel, scoped to the page's user."""

from __future__ import annotations

from typing import Any

from django import template

from omnidesk.incidents.selectors import incidents_for_banner
from omnidesk.routing.selectors import user_is_manager

register = template.Library()


@register.inclusion_tag("incidents/_banner.html", takes_context=True)
def incident_banner(context: dict[str, Any]) -> dict[str, Any]:
    user = context["request"].user
    return {"items": incidents_for_banner(user=user), "is_manager": user_is_manager(user)}
