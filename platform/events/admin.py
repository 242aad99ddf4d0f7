"""Django admin for the platform operator: tenants' events endpoints and their event log."""

from __future__ import annotations

from django.contrib import admin

from events.models import EventEndpoint, OutboundEvent


@admin.register(EventEndpoint)
class EventEndpointAdmin(admin.ModelAdmin):
    list_display = ["tenant", "url", "is_active", "created_at"]
    search_fields = ["tenant__name", "url"]
    # The secret is shown to the tenant once, in the dashboard; never here.
    exclude = ["signing_secret"]
    readonly_fields = ["tenant", "created_at"]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(OutboundEvent)
class OutboundEventAdmin(admin.ModelAdmin):
    list_display = ["public_id", "tenant", "type", "status", "attempts", "created_at"]
    list_filter = ["status", "type"]
    search_fields = ["public_id", "tenant__name"]
    readonly_fields = [field.name for field in OutboundEvent._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
