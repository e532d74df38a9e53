"""The raw-event log in the admin: what arrived, what became of it, and a retry for failures."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import Truncator

from .models import Cursor, InboundEvent
from .services import inbound_event_retry

PREVIEW_CHARS = 4000
RETRYABLE = (InboundEvent.Status.FAILED, InboundEvent.Status.IGNORED)


@admin.register(InboundEvent)
class InboundEventAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "status", "received_at", "attempts", "error_short"]
    list_filter = ["status", "account"]
    list_select_related = ["account"]
    search_fields = ["=id", "dedupe_key", "error"]
    date_hierarchy = "received_at"
    ordering = ["-received_at", "-pk"]
    fields = ["account", "status", "received_at", "processed_at", "attempts", "error", "summary_pretty",
              "dedupe_key", "headers_pretty", "body_preview"]
    readonly_fields = fields
    actions = ["retry_events"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # raw input is never lost, not even by hand

    @admin.display(description="error")
    def error_short(self, obj: InboundEvent) -> str:
        return Truncator(obj.error).chars(100)

    @admin.display(description="summary")
    def summary_pretty(self, obj: InboundEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.summary, indent=2, sort_keys=True, default=str))

    @admin.display(description="headers")
    def headers_pretty(self, obj: InboundEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.headers, indent=2, sort_keys=True, default=str))

    @admin.display(description="body (preview)")
    def body_preview(self, obj: InboundEvent) -> str:
        raw = bytes(obj.body or b"")
        head = raw[: PREVIEW_CHARS * 4]  # enough bytes for PREVIEW_CHARS characters of any UTF-8
        text = head.decode("utf-8", errors="replace")
        shown = text[:PREVIEW_CHARS]
        cut = len(head) < len(raw) or len(shown) < len(text)
        note = f"\n… truncated: {len(raw)} bytes in all, the first {len(shown)} characters shown" if cut else ""
        # format_html escapes: the body is untrusted vendor input
        return format_html("<pre style=\"white-space: pre-wrap\">{}{}</pre>", shown, note)

    @admin.action(description="Retry selected events")
    def retry_events(self, request: HttpRequest, queryset: QuerySet[InboundEvent]) -> None:
        retried = skipped = 0
        for event in queryset.select_related(None).only("pk", "status"):
            if event.status in RETRYABLE:
                inbound_event_retry(event=event)
                retried += 1
            else:
                skipped += 1
        text = f"{retried} event(s) queued for retry."
        if skipped:
            text += f" {skipped} skipped: only failed or ignored events are retried (pending ones are still queued)."
        self.message_user(request, text, messages.SUCCESS if retried else messages.WARNING)


@admin.register(Cursor)
class CursorAdmin(admin.ModelAdmin):
    list_display = ["account", "name", "value_short", "not_before", "updated_at"]
    list_filter = ["account"]
    readonly_fields = ["account", "name", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="value")
    def value_short(self, obj: Cursor) -> str:
        return Truncator(obj.value).chars(80)
