"""Who may call the API. Which rows they see is decided by the selectors, not here."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from omnidesk.routing.selectors import user_can_work, user_is_manager


class IsDeskStaff(BasePermission):
    """A manager, a superuser, or a user with an Agent profile."""

    message = "Your account has no agent profile, so it cannot use the desk. Ask a manager to add you as an agent."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and user_can_work(request.user))


class IsManagerOrReadOnly(BasePermission):
    """Agents read; only managers (and superusers) change."""

    message = "Only managers can change channel accounts."

    def has_permission(self, request: Any, view: Any) -> bool:
        return request.method in SAFE_METHODS or user_is_manager(request.user)
