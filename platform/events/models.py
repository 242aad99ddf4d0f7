"""A tenant's events endpoint and the events Koe sends to it, with their delivery state."""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from foundation.encryption import EncryptedTextField
from foundation.ids import public_id
from foundation.outbound import validate_url_for_saving
from tenancy.models import Tenant


def new_event_id() -> str:
    return public_id("evt")


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class EventType:
    """The event types Koe sends (not field choices: a new type needs no migration)."""

    CALL_ENDED = "call.ended"
    CALL_TRANSFER_REQUESTED = "call.transfer_requested"
    PHONE_CALL_STATUS = "phone_call.status"
    PING = "ping"


class EventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class EventEndpoint(models.Model):
    """Where a tenant receives events, and the secret that signs them (shown once)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="event_endpoint")
    url = models.URLField(max_length=500, blank=True, validators=[validate_url_for_saving])
    signing_secret = EncryptedTextField(default=new_signing_secret)
    # Clearing the URL turns events off but keeps the secret, so setting it again
    # does not break the receiver's verification.
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(is_active=False) | ~models.Q(url=""),
                name="event_endpoint_active_has_url",
            ),
        ]

    def __str__(self) -> str:
        state = self.url if self.is_active else "off"
        return f"Events of {self.tenant.name}: {state}"


class OutboundEvent(models.Model):
    """One event for one tenant; its id is sent on every attempt so receivers can dedupe."""

    public_id = models.CharField(max_length=40, unique=True, default=new_event_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="outbound_events")
    type = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, help_text="The event's data, as sent.")
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=16, choices=EventStatus.choices, default=EventStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # A retry further off than the broker may hold a message (its visibility timeout) is
    # kept here and sent by the sweep (events.tasks.send_due_events), never as a long ETA.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(next_attempt_at__isnull=False),
                name="outbound_event_due",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=EventStatus.values),
                name="outbound_event_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type} ({self.status})"
