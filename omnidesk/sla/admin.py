from typing import Any

from django import forms
from django.contrib import admin

from .models import Calendar, Policy
from .services import calendar_delete, calendar_save, policy_delete, policy_save
from .validation import Invalid, calendar_problems, policy_problems


class CalendarForm(forms.ModelForm):
    class Meta:
        model = Calendar
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        problems = calendar_problems(
            timezone=data.get("timezone", ""), hours=data.get("hours"), holiday_country=data.get("holiday_country", ""),
            holiday_subdivision=data.get("holiday_subdivision", ""), closed_dates=data.get("closed_dates", []),
        )
        if problems:
            raise forms.ValidationError(problems)
        return data


class PolicyForm(forms.ModelForm):
    class Meta:
        model = Policy
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        problems = policy_problems(
            conditions=data.get("conditions", {}), targets=data.get("targets"), warn_at_percent=data.get("warn_at_percent")
        )
        if problems:
            raise forms.ValidationError(problems)
        return data


@admin.register(Calendar)
class CalendarAdmin(admin.ModelAdmin):
    form = CalendarForm
    list_display = ["name", "timezone", "holiday_country", "holiday_subdivision"]

    def save_model(self, request: Any, obj: Calendar, form: Any, change: bool) -> None:
        calendar_save(calendar=obj)  # validated again and open tickets recomputed

    def delete_model(self, request: Any, obj: Calendar) -> None:
        calendar_delete(obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for calendar in queryset:
            calendar_delete(calendar)


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    form = PolicyForm
    list_display = ["name", "position", "active", "calendar", "warn_at_percent"]
    list_editable = ["position", "active"]
    ordering = ["position", "pk"]

    def delete_model(self, request: Any, obj: Policy) -> None:
        policy_delete(obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for policy in queryset:
            policy_delete(policy)

    def save_model(self, request: Any, obj: Policy, form: Any, change: bool) -> None:
        try:
            policy_save(policy=obj)
        except Invalid as exc:  # the form checked already; a race is still told, not crashed
            self.message_user(request, f"not saved: {exc}", level="error")
