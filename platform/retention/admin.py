"""Django admin for operators: retention policies, and the purge log (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from retention.models import PurgeLog, RetentionPolicy


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "agent",
        "recording_days",
        "transcript_days",
        "event_log_days",
        "updated_at",
    ]
    list_select_related = ["tenant", "agent"]
    raw_id_fields = ["tenant", "agent"]
    search_fields = ["tenant__name", "tenant__public_id"]


@admin.register(PurgeLog)
class PurgeLogAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "tenant",
        "trigger",
        "dry_run",
        "started_at",
        "duration_ms",
        "transcripts",
        "recordings",
        "events",
        "orphan_files",
        "missing_files",
        "held_calls",
        "error",
    ]
    list_filter = ["trigger", "dry_run"]
    list_select_related = ["tenant"]
    search_fields = ["public_id", "tenant__name", "tenant__public_id", "run_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
