"""Django admin for tool definitions (secrets are not shown)."""

from __future__ import annotations

from django.contrib import admin

from tools.models import ToolDefinition


@admin.register(ToolDefinition)
class ToolDefinitionAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "tenant", "kind", "execution", "updated_at"]
    list_filter = ["kind", "execution"]
    search_fields = ["name", "public_id", "tenant__name"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    exclude = ["signing_secret", "webhook_headers", "mcp_auth_header"]
