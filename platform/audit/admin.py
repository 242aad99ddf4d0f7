"""Operators read the access log and exports in the admin; nobody adds, edits or deletes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AccessLog, CallExport


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete: these rows are a record of what happened."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "actor", "role", "action", "call_public_id"]
    list_filter = ["action", "role"]
    search_fields = ["actor", "call_public_id", "tenant__name"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]


@admin.register(CallExport)
class CallExportAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "tenant", "requested_by_name", "format", "status", "created_at"]
    list_filter = ["format", "status"]
    search_fields = ["public_id", "requested_by_name", "tenant__name"]
    list_select_related = ["tenant"]
