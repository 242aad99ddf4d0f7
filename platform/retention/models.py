"""Retention: how long a tenant keeps what its calls stored, and what the purge removed.

A tenant has one policy (the row without an agent) and may override it per agent. A
blank number of days means "keep forever" on the tenant's row and "as the tenant" on an
agent's; 0 means "do not keep": the next purge after the call ends removes it. Raw event
logs are the tenant's, not an agent's, so only the tenant's row sets them.
"""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone

from foundation.ids import public_id
from tenancy.models import Tenant

# A hundred years: far beyond any retention law, and far from datetime's limits when the
# purge subtracts it from today.
MAX_RETENTION_DAYS = 36500


def retention_days_field(help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_RETENTION_DAYS)],
        help_text=help_text,
    )


class RetentionPolicy(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="retention_policies")
    agent = models.ForeignKey(
        "agents.Agent",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="retention_policies",
        help_text="Empty: the tenant's policy; set: an override for this agent's calls.",
    )
    recording_days = retention_days_field("Days to keep call recordings after the call ends.")
    transcript_days = retention_days_field(
        "Days to keep transcripts and tool call arguments and results after the call ends."
    )
    event_log_days = retention_days_field(
        "Days to keep sent events (their payloads and delivery records); tenant only."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "retention policies"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(agent__isnull=True),
                name="retention_one_tenant_policy",
            ),
            models.UniqueConstraint(
                fields=["tenant", "agent"],
                condition=models.Q(agent__isnull=False),
                name="retention_one_override_per_agent",
            ),
            models.CheckConstraint(
                condition=models.Q(agent__isnull=True) | models.Q(event_log_days__isnull=True),
                name="retention_event_logs_tenant_only",
            ),
        ]

    def __str__(self) -> str:
        owner = f"agent {self.agent_id}" if self.agent_id else "tenant"
        return (
            f"Retention of {self.tenant} ({owner}): recordings {_days(self.recording_days)}, "
            f"transcripts {_days(self.transcript_days)}, events {_days(self.event_log_days)}"
        )

    @property
    def is_override(self) -> bool:
        return self.agent_id is not None


def _days(days: int | None) -> str:
    return "-" if days is None else f"{days} d"


class PurgeTrigger(models.TextChoices):
    BEAT = "beat", "Scheduled (beat)"
    COMMAND = "command", "Management command"
    ERASURE = "erasure", "Erasure request"


def new_purge_log_id() -> str:
    return public_id("purge")


class PurgeLog(models.Model):
    """What one purge run (or one erasure request) removed from one tenant: counts only.

    Never the content, and never the end-user reference an erasure named: the log must
    not keep what it records the deletion of. Runs over several tenants share ``run_id``.
    """

    public_id = models.CharField(
        max_length=40, unique=True, default=new_purge_log_id, editable=False
    )
    run_id = models.UUIDField(default=uuid.uuid4, db_index=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="purge_logs")
    trigger = models.CharField(max_length=12, choices=PurgeTrigger.choices)
    dry_run = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    # Transcripts: calls whose transcript went, their items, tool invocations blanked.
    transcripts = models.PositiveIntegerField(default=0)
    transcript_items = models.PositiveIntegerField(default=0)
    tool_invocations = models.PositiveIntegerField(default=0)
    # Recordings: rows deleted with their calls' audio, and the files removed from storage.
    recordings = models.PositiveIntegerField(default=0)
    recording_files = models.PositiveIntegerField(default=0)
    events = models.PositiveIntegerField(default=0)
    # Exports whose file held a removed transcript (or an erased end user's call): removed.
    exports = models.PositiveIntegerField(default=0)
    # Reconciliation: files no row names, rows whose file had gone.
    orphan_files = models.PositiveIntegerField(default=0)
    missing_files = models.PositiveIntegerField(default=0)
    # Calls that were due (or named by an erasure) but kept: legal hold, still live.
    held_calls = models.PositiveIntegerField(default=0)
    active_calls = models.PositiveIntegerField(default=0)
    # Why the run stopped early for this tenant (an exception's class), or "".
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["tenant", "-started_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(trigger__in=PurgeTrigger.values),
                name="purge_log_trigger_valid",
            ),
        ]

    def __str__(self) -> str:
        mode = " (dry run)" if self.dry_run else ""
        return f"{self.public_id} {self.trigger}{mode} for {self.tenant}: {self.total} removed"

    @property
    def total(self) -> int:
        return (
            self.transcripts
            + self.recordings
            + self.events
            + self.orphan_files
            + self.missing_files
        )


class PurgeLease(models.Model):
    """Who is purging a tenant now, so that two workers never purge it at once.

    Claimed by a conditional UPDATE (atomic on every database, no open transaction while
    the purge runs its batches) and given back at the end; a lease of a worker that died
    expires. Kept apart from the policy so that saving the policy form never clears it.
    """

    tenant = models.OneToOneField(
        Tenant, on_delete=models.CASCADE, primary_key=True, related_name="purge_lease"
    )
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"purge lease of {self.tenant}: {self.holder or 'free'}"
