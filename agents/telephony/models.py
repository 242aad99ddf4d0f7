"""A tenant's carrier accounts, the phone numbers that reach its agents, and phone calls.

The caller's number is personal data: it is kept in one place only, the call's
``end_user_ref`` (so erasure by number and the end-user rules cover it); a ``PhoneCall``
holds the carrier's side of a call (its id there, direction, the tenant's own number).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from agents.telephony.telnyx import public_key
from foundation.encryption import EncryptedTextField
from foundation.ids import public_id, random_token
from foundation.phone_numbers import validate_e164
from tenancy.models import Tenant, hash_secret, validate_time_zone


def new_carrier_account_id() -> str:
    return public_id("car")


def new_phone_number_id() -> str:
    return public_id("pn")


class Carrier(models.TextChoices):
    TWILIO = "twilio", "Twilio"
    TELNYX = "telnyx", "Telnyx"


class CarrierAccount(models.Model):
    """A tenant's account at a carrier, its secret encrypted at rest: Twilio's account SID
    and auth token (which signs its webhooks and authorises its REST API); Telnyx's API
    key (in ``auth_token``), the public key its webhooks are signed for, and the Call
    Control application outbound calls go through (``connection_id``)."""

    public_id = models.CharField(
        max_length=40, unique=True, default=new_carrier_account_id, editable=False
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="carrier_accounts")
    name = models.CharField(max_length=80)
    carrier = models.CharField(max_length=16, choices=Carrier.choices, default=Carrier.TWILIO)
    account_sid = models.CharField(
        max_length=64,
        blank=True,
        help_text="Twilio: the account SID (AC…), shown in Twilio's console.",
    )
    auth_token = EncryptedTextField(help_text="Twilio: the auth token. Telnyx: an API key.")
    webhook_public_key = models.CharField(
        max_length=200,
        blank=True,
        help_text="Telnyx: the public key (base64) its webhooks are signed with.",
    )
    connection_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="Telnyx: the Call Control application's id (outbound calls go through it).",
    )
    token_hint = models.CharField(max_length=8, editable=False, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="carrier_account_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_carrier_display()} {self.account_sid})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.token_hint = self.auth_token[-4:] if self.auth_token else ""
        super().save(*args, **kwargs)

    def clean(self) -> None:
        # What each carrier's webhooks are checked with: Twilio signs with the auth token
        # of the account SID it names; Telnyx with the key pair whose public half is here.
        if self.carrier == Carrier.TWILIO and not self.account_sid:
            raise ValidationError({"account_sid": "This field is required for a Twilio account."})
        if self.carrier == Carrier.TELNYX and public_key(self.webhook_public_key) is None:
            raise ValidationError(
                {
                    "webhook_public_key": "Paste the public key Telnyx's portal shows (Keys & "
                    "Credentials, Public Key): base64 of a 32-byte Ed25519 key."
                }
            )


class PhoneConsent(models.TextChoices):
    """How consent is obtained on a number's calls (the tenant's legal basis)."""

    NONE = "none", "None: keep metadata only"
    DISCLOSED = "disclosed", "Disclosed: the agent's consent text is spoken before the greeting"
    DTMF = "dtmf", "Key press: the agent's consent text is read, and 1 agrees"


class PhoneNumber(models.Model):
    """A number at a carrier whose calls reach one agent. A number belongs to one tenant:
    a carrier's webhook for it can reach no other tenant's agent."""

    public_id = models.CharField(
        max_length=40, unique=True, default=new_phone_number_id, editable=False
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="phone_numbers")
    number = models.CharField(max_length=16, unique=True, validators=[validate_e164])
    carrier_account = models.ForeignKey(
        CarrierAccount, on_delete=models.PROTECT, related_name="phone_numbers"
    )
    agent = models.ForeignKey(
        "agents.Agent",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="phone_numbers",
        help_text="The agent that answers this number; none: callers hear that the line is closed.",
    )
    label = models.CharField(max_length=80, blank=True)
    consent = models.CharField(
        max_length=16, choices=PhoneConsent.choices, default=PhoneConsent.NONE
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["number"]
        indexes = [models.Index(fields=["tenant", "number"])]

    def __str__(self) -> str:
        return f"{self.number} ({self.label})" if self.label else self.number


def new_phone_call_id() -> str:
    return public_id("pc")


class PhoneCallStatus(models.TextChoices):
    """Where a call stands at the carrier (Twilio's call statuses)."""

    QUEUED = "queued", "Queued"
    RINGING = "ringing", "Ringing"
    IN_PROGRESS = "in-progress", "In progress"
    COMPLETED = "completed", "Completed"
    BUSY = "busy", "Busy"
    NO_ANSWER = "no-answer", "No answer"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


FINAL_STATUSES = frozenset(
    {
        PhoneCallStatus.COMPLETED,
        PhoneCallStatus.BUSY,
        PhoneCallStatus.NO_ANSWER,
        PhoneCallStatus.FAILED,
        PhoneCallStatus.CANCELED,
    }
)


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class PhoneCall(models.Model):
    """A call at a carrier: created when the carrier asks what to do with it, joined to
    its ``CallSession`` when its media stream connects with the single-use stream token."""

    public_id = models.CharField(
        max_length=40, unique=True, default=new_phone_call_id, editable=False
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="phone_calls")
    call = models.OneToOneField(
        "calls.CallSession",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="phone_call",
    )
    phone_number = models.ForeignKey(
        PhoneNumber, on_delete=models.SET_NULL, null=True, related_name="phone_calls"
    )
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.SET_NULL, null=True, related_name="phone_calls"
    )
    carrier = models.CharField(max_length=16, choices=Carrier.choices)
    carrier_call_id = models.CharField(max_length=128)
    direction = models.CharField(max_length=16, choices=Direction.choices)
    status = models.CharField(
        max_length=16, choices=PhoneCallStatus.choices, default=PhoneCallStatus.RINGING
    )
    # The carrier's answering-machine detection (outbound): human, machine_start, fax…
    answered_by = models.CharField(max_length=32, blank=True)
    transfer_to = models.CharField(max_length=64, blank=True)
    transferred_at = models.DateTimeField(null=True, blank=True)
    # The call's length at the carrier (what it bills), once it has ended there.
    carrier_duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The caller's number lives in the call's end_user_ref; until the call opens, here.
    remote_number = models.CharField(max_length=32, blank=True)
    stream_token_hash = models.CharField(max_length=64, unique=True)
    stream_token_expires_at = models.DateTimeField()
    stream_started_at = models.DateTimeField(null=True, blank=True)
    # Consent by key press (a number whose consent is dtmf): the caller's answer.
    consent_given = models.BooleanField(null=True, blank=True)
    consent_answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["carrier", "carrier_call_id"], name="phone_call_carrier_id_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_carrier_display()} {self.direction} call {self.carrier_call_id}"

    @staticmethod
    def new_stream_token(ttl: timedelta | None = None) -> tuple[str, dict[str, Any]]:
        """A single-use stream token, and the fields that store it (its digest, its
        expiry) for ``claim_stream`` to find; only the carrier is given the token."""
        token = STREAM_TOKEN_PREFIX + random_token(40)
        expires_at = timezone.now() + (ttl or STREAM_TOKEN_TTL)
        return token, {
            "stream_token_hash": hash_secret(token),
            "stream_token_expires_at": expires_at,
        }

    @classmethod
    def claim_stream(cls, token: str) -> PhoneCall | None:
        """Use a stream token once: the atomic update makes a second use fail on any
        process; an expired token is refused."""
        digest = hash_secret(token)
        moment = timezone.now()
        claimed = cls.objects.filter(
            stream_token_hash=digest,
            stream_started_at__isnull=True,
            stream_token_expires_at__gt=moment,
        ).update(stream_started_at=moment)
        if not claimed:
            return None
        return cls.objects.select_related("tenant", "agent__current_version", "phone_number").get(
            stream_token_hash=digest
        )


STREAM_TOKEN_TTL = timedelta(seconds=60)
STREAM_TOKEN_PREFIX = "st_"


# --- batch calls ------------------------------------------------------------------------------


def new_call_batch_id() -> str:
    return public_id("bat")


class BatchStatus(models.TextChoices):
    """Where a batch stands: scheduled until ``starts_at``, then running until every entry
    is settled (completed) or someone stops it."""

    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


# A batch the dispatcher places calls for, and one that is not over yet.
DISPATCHED_BATCH_STATUSES = (BatchStatus.SCHEDULED, BatchStatus.RUNNING)
UNFINISHED_BATCH_STATUSES = (*DISPATCHED_BATCH_STATUSES, BatchStatus.PAUSED)

MAX_BATCH_CONCURRENCY = 50
MAX_BATCH_ATTEMPTS = 5
MAX_RETRY_DELAY_MINUTES = 7 * 24 * 60


class CallBatch(models.Model):
    """Calls an agent places to a list of numbers, each inside a time window of the
    callee's day, at most ``concurrency`` at once, retrying no-answer and busy."""

    public_id = models.CharField(
        max_length=40, unique=True, default=new_call_batch_id, editable=False
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="call_batches")
    # Kept when the agent or number goes (the batch's history stays); the dispatcher then
    # pauses the batch, saying why.
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.SET_NULL, null=True, related_name="call_batches"
    )
    phone_number = models.ForeignKey(
        PhoneNumber, on_delete=models.SET_NULL, null=True, related_name="call_batches"
    )
    name = models.CharField(max_length=120)
    status = models.CharField(
        max_length=16, choices=BatchStatus.choices, default=BatchStatus.SCHEDULED
    )
    # Local times of the callee's day; a window may pass midnight (22:00-02:00).
    window_start = models.TimeField()
    window_end = models.TimeField()
    time_zone = models.CharField(
        max_length=64,
        validators=[validate_time_zone],
        help_text="The callees' time zone where an entry names none.",
    )
    concurrency = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(MAX_BATCH_CONCURRENCY)]
    )
    max_attempts = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(MAX_BATCH_ATTEMPTS)]
    )
    retry_delay_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(MAX_RETRY_DELAY_MINUTES)]
    )
    starts_at = models.DateTimeField(default=timezone.now)
    # Why the batch waits or stopped (the tenant's cap, its budget, a deleted agent).
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["status", "starts_at"]),  # the dispatcher's batches
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(concurrency__gte=1, concurrency__lte=MAX_BATCH_CONCURRENCY),
                name="call_batch_concurrency_range",
            ),
            models.CheckConstraint(
                condition=models.Q(max_attempts__gte=1, max_attempts__lte=MAX_BATCH_ATTEMPTS),
                name="call_batch_max_attempts_range",
            ),
            models.CheckConstraint(
                condition=~models.Q(window_start=models.F("window_end")),
                name="call_batch_window_not_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id}, {self.status})"

    def clean(self) -> None:
        if self.window_start is not None and self.window_start == self.window_end:
            raise ValidationError({"window_end": "The window must end at another time."})


class EntryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CALLING = "calling", "Calling"
    COMPLETED = "completed", "Completed"
    NO_ANSWER = "no_answer", "No answer"
    BUSY = "busy", "Busy"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class BatchEntry(models.Model):
    """One number of a batch: its callee's time zone, and how its calls went."""

    batch = models.ForeignKey(CallBatch, on_delete=models.CASCADE, related_name="entries")
    position = models.PositiveIntegerField(help_text="Its index in the list it came in.")
    to = models.CharField(max_length=16, validators=[validate_e164])
    end_user = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    time_zone = models.CharField(max_length=64, validators=[validate_time_zone])
    status = models.CharField(
        max_length=16, choices=EntryStatus.choices, default=EntryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_phone_call = models.ForeignKey(
        PhoneCall,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="batch_entries",
    )
    last_status = models.CharField(max_length=16, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["batch", "position"]
        verbose_name_plural = "batch entries"
        indexes = [
            # The dispatcher's query: a batch's due pending entries, oldest first.
            models.Index(fields=["batch", "status", "next_attempt_at"], name="batch_entry_due"),
            # Entries in flight, checked each tick for lost status callbacks.
            models.Index(
                fields=["updated_at"],
                condition=models.Q(status="calling"),
                name="batch_entry_calling",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["batch", "to"], name="batch_entry_to_unique"),
            models.UniqueConstraint(
                fields=["batch", "position"], name="batch_entry_position_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.batch.public_id} #{self.position} ({self.status})"
