from django.contrib import admin

from .models import BulkDelivery, BulkReply, Incident, IncidentTicket


class IncidentTicketInline(admin.TabularInline):
    model = IncidentTicket
    fields = ("ticket", "channel", "message", "linked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ("pk", "title", "status", "source", "opened_at", "resolved_at", "window_count", "baseline")
    list_filter = ("status", "source")
    search_fields = ("title", "summary", "signal_key")
    readonly_fields = ("source", "signal_account", "signal_key", "signal_status", "window_count", "baseline",
                       "opened_at", "resolved_at", "created_by", "updated_at")
    inlines = [IncidentTicketInline]


class BulkDeliveryInline(admin.TabularInline):
    model = BulkDelivery
    fields = ("ticket", "channel", "outcome", "message", "note", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(BulkReply)
class BulkReplyAdmin(admin.ModelAdmin):
    list_display = ("pk", "incident", "kind", "created_by", "created_at", "finished_at")
    list_filter = ("kind",)
    readonly_fields = ("incident", "kind", "text", "public_text", "key", "created_by", "created_at", "finished_at")
    inlines = [BulkDeliveryInline]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False  # a bulk reply is sent from the incident (API), never typed in here
