"""What every workspace page's header needs."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from omnidesk.routing.models import Agent
from omnidesk.routing.selectors import user_is_manager


def header(request: HttpRequest) -> dict[str, Any]:
    agent = Agent.objects.filter(user=request.user).first()
    return {
        "presence": agent.presence if agent else "",
        "presence_choices": [Agent.Presence.ONLINE, Agent.Presence.AWAY],
        "is_manager": user_is_manager(request.user),
    }
