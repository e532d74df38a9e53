"""Customers and their channel identities in the admin.

Identities are made by the ingest pipeline, which normalizes them (lower-cased email, E.164
phone); here their key is read-only and only the deliverability flag can be cleared.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count
from django.http import HttpRequest

from .models import Customer, Identity

IDENTITY_FIELDS = ["kind", "namespace", "value", "display_name", "followers", "verified", "reach_seen_at",
                   "undeliverable", "undeliverable_reason", "created_at"]
IDENTITY_READONLY = [f for f in IDENTITY_FIELDS if f not in ("undeliverable", "undeliverable_reason")]


class IdentityInline(admin.TabularInline):
    model = Identity
    fields = IDENTITY_FIELDS
    readonly_fields = IDENTITY_READONLY
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["id", "display_name", "identity_count", "merged_into", "created_at"]
    search_fields = ["display_name", "identities__value"]
    readonly_fields = ["merged_into", "created_at"]
    fields = ["display_name", "tags", "merged_into", "created_at"]
    inlines = [IdentityInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers come from their messages

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).annotate(identity_total=Count("identities"))

    @admin.display(description="identities", ordering="identity_total")
    def identity_count(self, obj: Customer) -> int:
        return obj.identity_total  # type: ignore[attr-defined]


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "value", "namespace", "display_name", "customer", "followers", "verified",
                    "undeliverable"]
    list_filter = ["kind", "undeliverable", "verified"]
    list_select_related = ["customer"]
    search_fields = ["value", "display_name"]
    fields = ["customer", *IDENTITY_FIELDS]
    readonly_fields = ["customer", *IDENTITY_READONLY]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
