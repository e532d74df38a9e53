"""Teams and agents in the admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count
from django.http import HttpRequest

from .models import Agent, Group


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["name", "agent_count", "created_at"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).annotate(agent_total=Count("agents"))

    @admin.display(description="agents", ordering="agent_total")
    def agent_count(self, obj: Group) -> int:
        return obj.agent_total  # type: ignore[attr-defined]


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "group_names", "capacity", "presence"]
    list_filter = ["role", "presence", "groups"]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__email"]
    filter_horizontal = ["groups"]
    autocomplete_fields = ["user"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="groups")
    def group_names(self, obj: Agent) -> str:
        return ", ".join(g.name for g in obj.groups.all()) or "-"
