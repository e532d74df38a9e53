"""Teams, agents and routing rules in the admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.http import HttpRequest

from .models import Agent, Group, Rule
from .services import RuleInvalid, rule_problems_all, rule_save, rules_cache_clear


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


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = ["name", "description", "position", "active", "events", "conditions", "any_conditions", "actions",
                  "stop_processing"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        problems = rule_problems_all(fields=data, exclude_pk=self.instance.pk)
        if problems:
            raise forms.ValidationError(problems)
        return data


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    """Rules run in position order; the dry-run is POST /api/v1/routing/rules/dry-run/ {"ticket": id}."""

    form = RuleForm
    list_display = ["name", "position", "active", "event_list", "stop_processing", "updated_at"]
    list_editable = ["position", "active"]
    list_filter = ["active"]
    search_fields = ["name", "description"]
    ordering = ["position", "pk"]

    @admin.display(description="events")
    def event_list(self, obj: Rule) -> str:
        return ", ".join(obj.events)

    def save_model(self, request: HttpRequest, obj: Rule, form: Any, change: bool) -> None:
        fields = {name: getattr(obj, name) for name in form.Meta.fields}
        try:
            rule_save(rule=obj if obj.pk else None, **fields)
        except RuleInvalid as exc:  # the form checked already; a concurrent change is still told, not crashed
            self.message_user(request, f"not saved: {exc}", level="error")
        rules_cache_clear()
