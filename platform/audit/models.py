"""The access log: one row per read of a call's transcript or recording, and per export.

Append-only: a row cannot be changed or deleted through the ORM's model or queryset API
(the dashboard and API offer neither); only deleting its tenant removes it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from foundation.ids import public_id
from tenancy.models import Tenant


class AccessAction(models.TextChoices):
    VIEW_TRANSCRIPT = "view_transcript", "Viewed the transcript"
    PLAY_RECORDING = "play_recording", "Played the recording"
    DOWNLOAD_RECORDING = "download_recording", "Downloaded the recording"
    EXPORT = "export", "Exported"
    DOWNLOAD_EXPORT = "download_export", "Downloaded an export"
    HOLD_SET = "hold_set", "Set legal hold"
    HOLD_LIFTED = "hold_lifted", "Lifted legal hold"
    # The call list's transcript search shows an extract of each matching call's words.
    SEARCH_TRANSCRIPTS = "search_transcripts", "Searched transcripts"


class AppendOnly(Exception):
    """Access log rows are never changed or deleted."""


class AccessLogQuerySet(models.QuerySet["AccessLog"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnly("The access log cannot be edited.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnly("The access log cannot be deleted.")


class AccessLog(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="access_logs")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Kept as text so the row still says who and which call after either is deleted.
    actor = models.CharField(max_length=254)
    role = models.CharField(max_length=16, blank=True)
    call = models.ForeignKey(
        "calls.CallSession", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    call_public_id = models.CharField(max_length=40, blank=True, db_index=True)
    action = models.CharField(max_length=24, choices=AccessAction.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AccessLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["tenant", "action", "-created_at"]),
        ]

    def __str__(self) -> str:
        return (
            f"{self.actor} {self.action} {self.call_public_id} at {self.created_at:%Y-%m-%d %H:%M}"
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnly("The access log cannot be edited.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly("The access log cannot be deleted.")


def new_export_id() -> str:
    return public_id("exp")


class ExportFormat(models.TextChoices):
    JSON = "json", "JSON"
    CSV = "csv", "CSV (one row per turn)"
    TEXT = "txt", "Plain-text transcript"


class ExportStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    RUNNING = "running", "Running"
    DONE = "done", "Ready"
    FAILED = "failed", "Failed"


class RemovedReason(models.TextChoices):
    """Why an export's file was deleted before it expired."""

    ERASURE = "erasure", "it held a call whose end user asked for their data to be erased"
    RETENTION = "retention", "it held a call whose transcript passed its retention period"


def export_path(export: CallExport, filename: str) -> str:
    return f"exports/{export.tenant.public_id}/{filename}"


class CallExport(models.Model):
    """One export of a call or of a filtered set of calls, written by a Celery task.

    ``params`` says what was asked ({"call": id} or {"filters": the call list's query as
    lists}), so the task can run again from it and the record says what left the platform.
    ``ExportedCall`` rows say which calls the file holds, so that erasing or purging a
    call's transcript also removes the files that copied it (``removed_at``; the row stays).
    ``masks_phone_numbers`` is fixed when the export is asked for, from the asking member's
    role then: the task runs later, and the file must hold what that person may see.
    """

    public_id = models.CharField(max_length=40, unique=True, default=new_export_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="call_exports")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    requested_by_name = models.CharField(max_length=254)
    params = models.JSONField(default=dict)
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    # Whether phone calls' numbers are masked in the file (calls.end_users). True unless
    # said otherwise, so an export made without asking whose it is shows no numbers.
    masks_phone_numbers = models.BooleanField(default=True)
    status = models.CharField(
        max_length=8, choices=ExportStatus.choices, default=ExportStatus.PENDING
    )
    total = models.PositiveIntegerField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to=export_path, max_length=300, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_reason = models.CharField(max_length=12, choices=RemovedReason.choices, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["expires_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(format__in=ExportFormat.values), name="export_format_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=ExportStatus.values), name="export_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(removed_at__isnull=True, removed_reason="")
                | models.Q(removed_at__isnull=False, removed_reason__in=RemovedReason.values),
                name="export_removed_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.get_format_display()}, {self.status})"

    @property
    def is_single_call(self) -> bool:
        return bool(self.params.get("call"))

    @property
    def is_finished(self) -> bool:
        return self.status in (ExportStatus.DONE, ExportStatus.FAILED)

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_removed(self) -> bool:
        return self.removed_at is not None

    @property
    def percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        if not self.total:
            return 0
        return min(100, self.done * 100 // self.total)


class ExportedCall(models.Model):
    """One call that an export's file holds, written as the export task reads the call.

    Indexed by call (the foreign key's index) to answer "which files hold this call?" when
    erasure or retention removes its transcript, and "who exported this call?" in the
    access log; the unique pair indexes the other direction.
    """

    export = models.ForeignKey(CallExport, on_delete=models.CASCADE, related_name="exported_calls")
    call = models.ForeignKey("calls.CallSession", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["export", "call"], name="exported_call_once"),
        ]

    def __str__(self) -> str:
        return f"call {self.call_id} in export {self.export_id}"
