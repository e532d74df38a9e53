"""Tickets, their audit trail and the outbox in the admin.

Tickets are not created here (they come from channels); status, priority, group and assignee
changes go through `ticket_update` so the audit trail records them like any agent's change.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import HttpRequest
from django.utils.text import Truncator

from .models import Message, OutboundMessage, Ticket, TicketEvent
from .services import ticket_update

EDITABLE = ("status", "priority", "group", "assignee")


class ReadOnlyMixin:
    """Append-only records: visible, never added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MessageInline(ReadOnlyMixin, admin.TabularInline):
    model = Message
    fields = ["sent_at", "direction", "kind", "visibility", "account", "author", "text_preview", "state", "state_reason"]
    readonly_fields = fields
    extra = 0
    ordering = ["sent_at", "pk"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("account", "author_identity", "author_user")

    @admin.display(description="author")
    def author(self, obj: Message) -> str:
        if obj.author_user_id:
            return f"agent {obj.author_user.get_username()}"
        if obj.author_identity_id:
            identity = obj.author_identity
            return f"{identity.kind} {identity.value}" + (f" ({identity.display_name})" if identity.display_name else "")
        return "-"

    @admin.display(description="text")
    def text_preview(self, obj: Message) -> str:
        return Truncator(obj.text).chars(300)


class TicketEventInline(ReadOnlyMixin, admin.TabularInline):
    model = TicketEvent
    fields = ["at", "actor", "actor_user", "action", "field", "old", "new", "note"]
    readonly_fields = fields
    extra = 0


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ["id", "subject", "status", "priority", "channel", "customer", "group", "assignee", "updated_at"]
    list_display_links = ["id", "subject"]
    list_filter = ["status", "priority", "origin_account__kind", "group"]
    list_select_related = ["origin_account", "customer", "group", "assignee"]
    search_fields = ["=id", "subject", "customer__display_name"]
    ordering = ["-updated_at"]
    fields = [
        "subject", *EDITABLE, "origin_account", "customer", "tags", "created_at", "updated_at",
        "customer_first_message_at", "last_customer_message_at", "first_response_at", "solved_at", "closed_at",
        "reopen_count", "handoff_at", "sla_policy", "sla_reason", "first_response_due_at", "next_response_due_at",
        "resolution_due_at",
    ]
    readonly_fields = [f for f in fields if f not in EDITABLE]
    inlines = [MessageInline, TicketEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="channel", ordering="origin_account__kind")
    def channel(self, obj: Ticket) -> str:
        return obj.origin_account.kind

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "assignee":
            kwargs["queryset"] = get_user_model().objects.filter(is_active=True).filter(
                Q(agent__isnull=False) | Q(is_superuser=True)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Ticket, form: Any, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE}
        if changes:
            ticket_update(ticket=obj, user=request.user, **changes)


@admin.register(TicketEvent)
class TicketEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "ticket", "at", "actor", "actor_user", "action", "field", "old", "new", "note"]
    list_filter = ["actor", "action"]
    list_select_related = ["ticket", "actor_user"]
    search_fields = ["=ticket__id", "action", "note"]


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "ticket", "account", "to_identity", "status", "attempts", "error_code", "last_error_short",
                    "next_attempt_at", "created_at", "sent_at"]
    list_filter = ["status", "account"]
    list_select_related = ["message__ticket", "account", "to_identity"]
    search_fields = ["=message__ticket__id", "last_error"]

    @admin.display(description="ticket", ordering="message__ticket_id")
    def ticket(self, obj: OutboundMessage) -> str:
        return str(obj.message.ticket)

    @admin.display(description="last error")
    def last_error_short(self, obj: OutboundMessage) -> str:
        return Truncator(obj.last_error).chars(80)
