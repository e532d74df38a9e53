"""Who may see what: the one place that answers it, used by the API, pages and websockets."""

from __future__ import annotations

from typing import Any


def user_is_manager(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    agent = getattr(user, "agent", None)
    return agent is not None and agent.role == "manager"


def user_group_ids(user: Any) -> set[int]:
    agent = getattr(user, "agent", None)
    if agent is None:
        return set()
    return set(agent.groups.values_list("pk", flat=True))


def user_can_work(user: Any) -> bool:
    """Staff of the desk: a manager, or an agent with a profile."""
    return user_is_manager(user) or getattr(user, "agent", None) is not None
