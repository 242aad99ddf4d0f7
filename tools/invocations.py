"""ToolInvocation: one execution of a tool, from a live call or the dashboard's test button."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from calls.models import CallSession
from foundation.ids import public_id
from tenancy.models import Tenant


def new_invocation_id() -> str:
    return public_id("inv")


class InvocationStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # queued for a Celery worker
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    # The call ended (the caller hung up) before an inline run finished: neither a
    # success nor the tool's failure, so error rates leave it out.
    CANCELLED = "cancelled", "Cancelled"


class InvocationSource(models.TextChoices):
    CALL = "call", "A live call"
    TEST = "test", "Test from the dashboard"


class Delivery(models.TextChoices):
    INLINE = "inline", "Returned to the model at once"
    DELIVERED = "delivered", "Delivered to the live call (it confirmed)"
    CALL_ENDED = "call_ended", "Stored: the call had ended"
    PENDING = "pending", "Not delivered yet"


class ToolInvocation(models.Model):
    public_id = models.CharField(
        max_length=40, unique=True, default=new_invocation_id, editable=False
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tool_invocations")
    tool = models.ForeignKey(
        "tools.ToolDefinition",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="invocations",
    )
    tool_name = models.CharField(max_length=64)  # the function the model called
    call = models.ForeignKey(
        CallSession,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="tool_invocations",
    )
    function_call_id = models.CharField(max_length=80)
    # call id + function call id: every retry of one function call shares it, so a retried
    # task finds the row and never runs a finished call twice.
    idempotency_key = models.CharField(max_length=160, unique=True)
    source = models.CharField(max_length=8, choices=InvocationSource.choices)
    execution = models.CharField(max_length=16)  # inline / background
    status = models.CharField(
        max_length=12, choices=InvocationStatus.choices, default=InvocationStatus.PENDING
    )
    error_code = models.CharField(max_length=40, blank=True)
    # Stored only when the call's consent covers transcripts (always for test runs).
    stores_content = models.BooleanField(default=False)
    arguments = models.JSONField(null=True, blank=True)
    result = models.TextField(blank=True)  # the output given to the model
    attempts = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    delivery = models.CharField(
        max_length=12, choices=Delivery.choices, default=Delivery.PENDING, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "tool", "-created_at"]),
            models.Index(fields=["call", "created_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=InvocationStatus.values),
                name="tool_invocation_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tool_name} ({self.public_id}, {self.status})"


def confirm_delivery(invocation_public_id: str) -> None:
    """The live call has a background tool's result: only now is it delivered."""
    ToolInvocation.objects.filter(
        public_id=invocation_public_id, delivery__in=[Delivery.PENDING, Delivery.CALL_ENDED]
    ).update(delivery=Delivery.DELIVERED)
