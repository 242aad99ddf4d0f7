"""Django admin for agents, their versions (read-only history) and widget keys."""

from __future__ import annotations

from django.contrib import admin

from agents.models import Agent, AgentVersion, WidgetKey


class WidgetKeyInline(admin.TabularInline):
    model = WidgetKey
    extra = 0
    readonly_fields = ["key", "created_at"]


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "tenant", "provider", "model", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["name", "public_id", "tenant__name"]
    readonly_fields = ["public_id", "current_version", "created_at", "updated_at"]
    filter_horizontal = ["tools"]
    inlines = [WidgetKeyInline]

    def save_related(self, request, form, formsets, change):  # type: ignore[no-untyped-def]
        from agents.versions import record_version

        super().save_related(request, form, formsets, change)
        record_version(form.instance, request.user)


@admin.register(AgentVersion)
class AgentVersionAdmin(admin.ModelAdmin):
    list_display = ["agent", "number", "created_by", "created_at"]
    search_fields = ["agent__name", "agent__public_id"]
    readonly_fields = ["agent", "number", "config", "created_by", "created_at"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
