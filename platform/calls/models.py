"""Call records: sessions, their transcript, usage per response, and realtime session tokens.

The platform core refers to agents only by app label ("agents.Agent"); it never imports
them. A call keeps the agent's name and version number as text so that its record stays
readable after the agent is deleted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models
from django.utils import timezone

from foundation.ids import public_id
from tenancy.models import Tenant, hash_secret


def new_call_id() -> str:
    return public_id("call")


class Channel(models.TextChoices):
    API = "api", "Server (secret key)"
    WIDGET = "widget", "Widget / browser (session token)"
    PHONE = "phone", "Phone (carrier media stream)"


class ConsentScope(models.TextChoices):
    NONE = "none", "None (metadata only)"
    TRANSCRIPT = "transcript", "Transcript"
    RECORDING = "recording", "Transcript and recording"


class ConsentMethod(models.TextChoices):
    NONE = "", "Not asked"
    WIDGET = "widget_checkbox", "Widget checkbox"
    API = "api_flag", "API flag"
    SPOKEN = "spoken", "Spoken"
    DISCLOSED = "disclosed", "Disclosed (spoken before the greeting)"
    DTMF = "dtmf", "Key press (phone)"


class EndReason(models.TextChoices):
    CLIENT_CLOSED = "client_closed", "Caller hung up"
    PROVIDER_ERROR = "provider_error", "Provider error"
    MAX_DURATION = "max_duration", "Maximum duration reached"
    IDLE_TIMEOUT = "idle_timeout", "Idle timeout"
    OPERATOR = "operator", "Ended by an operator"
    BUDGET = "budget", "Budget reached"
    AUTH_EXPIRED = "auth_expired", "Authorization expired"
    AGENT = "agent", "Ended by the agent"
    TRANSFERRED = "transferred", "Transferred to a person"
    VOICEMAIL = "voicemail", "Reached an answering machine"
    SERVER_SHUTDOWN = "server_shutdown", "Server shut down"
    SERVER_ERROR = "server_error", "Server error"
    SERVER_LOST = "server_lost", "Server lost (its process stopped)"


class ServerInstance(models.Model):
    """A serving process, as long as it runs: it records here that it is alive. Its calls
    name it (``CallSession.server_instance``), so a process that stops beating is known to
    hold no live call any more."""

    name = models.CharField(max_length=160, unique=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.name} (seen {self.last_seen_at:%Y-%m-%d %H:%M:%S})"


class CallStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"


class CallSession(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=new_call_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="calls")
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.SET_NULL, null=True, blank=True, related_name="calls"
    )
    agent_version = models.ForeignKey(
        "agents.AgentVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
    )
    agent_name = models.CharField(max_length=120)
    version_number = models.PositiveIntegerField()
    channel = models.CharField(max_length=16, choices=Channel.choices)
    end_user_ref = models.CharField(max_length=200, blank=True, db_index=True)
    consent_scope = models.CharField(
        max_length=16, choices=ConsentScope.choices, default=ConsentScope.NONE
    )
    consent_method = models.CharField(
        max_length=20, choices=ConsentMethod.choices, default=ConsentMethod.NONE, blank=True
    )
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_text = models.TextField(blank=True)
    consent_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version of the agent's consent text answered."
    )
    provider = models.CharField(max_length=16)
    model = models.CharField(max_length=80)
    status = models.CharField(max_length=8, choices=CallStatus.choices, default=CallStatus.ACTIVE)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    end_detail = models.TextField(blank=True)
    turn_count = models.PositiveIntegerField(default=0)
    latencies_ms = models.JSONField(
        default=list, blank=True, help_text="Per turn: end of the caller's speech to first audio."
    )
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    # The provider cost of the call (its responses and, on the phone, its carrier minutes)
    # and what the tenant is billed (with the operator's margin), set when the call is
    # settled after it ends.
    cost = models.DecimalField(max_digits=20, decimal_places=9, null=True, blank=True)
    billed_amount = models.DecimalField(max_digits=20, decimal_places=9, null=True, blank=True)
    cost_computed_at = models.DateTimeField(null=True, blank=True)
    # A phone call's carrier ("twilio", "telnyx") and direction ("inbound", "outbound"),
    # set as it opens; empty for other channels. Settling prices its minutes (whole
    # started minutes, as carriers bill them) with the carrier's price in force at its
    # start: ``carrier_cost`` is part of ``cost``, and null when no price was in force.
    carrier = models.CharField(max_length=16, blank=True)
    carrier_direction = models.CharField(max_length=16, blank=True)
    carrier_minutes = models.PositiveIntegerField(null=True, blank=True)
    carrier_cost = models.DecimalField(max_digits=20, decimal_places=9, null=True, blank=True)
    server_instance = models.CharField(
        max_length=120, blank=True, help_text="The process that holds the live call."
    )
    media_quality = models.JSONField(
        default=dict,
        blank=True,
        help_text="WebRTC calls: the media path as measured at the end (round trip, packet "
        "loss and jitter each way).",
    )
    provider_sessions = models.PositiveSmallIntegerField(
        default=1,
        help_text="Speech provider sessions the call used: more than one when a session "
        "that dropped or reached its time limit was replaced mid-call.",
    )
    needs_follow_up = models.BooleanField(
        default=False, help_text="The agent asked for a person to follow this call up."
    )
    follow_up_reason = models.TextField(blank=True)
    # Legal hold: retention skips the call until the hold is lifted.
    legal_hold = models.BooleanField(default=False)
    legal_hold_at = models.DateTimeField(null=True, blank=True)
    legal_hold_by = models.CharField(max_length=254, blank=True)
    # What the caller and the agent said, joined, for search (kept in step with the
    # transcript by calls.ledger.store_progress, emptied with it by retention and erasure).
    transcript_text = models.TextField(blank=True, editable=False)
    transcript_purged_at = models.DateTimeField(null=True, blank=True)
    recording_purged_at = models.DateTimeField(null=True, blank=True)
    # False when the retention policy in force as the call opened keeps that kind 0 days:
    # then it is never written, whatever the consent (consent says what may be kept, the
    # policy how long; 0 days is "do not keep").
    keeps_transcript = models.BooleanField(default=True)
    keeps_recording = models.BooleanField(default=True)

    class Meta:
        ordering = ["-started_at"]
        # The dashboard's call list orders by (started_at, id) newest first within a tenant;
        # each filter either walks that order (common values) or has its own index so a
        # rare value is found without walking it (see calls/search.py). PostgreSQL also gets
        # a full-text GIN index on transcript_text, made in migration 0005 only there.
        indexes = [
            models.Index(fields=["tenant", "-started_at", "-id"], name="call_list_recent"),
            models.Index(fields=["tenant", "status"]),
            models.Index(fields=["agent", "-started_at"]),
            models.Index(fields=["tenant", "needs_follow_up"]),
            models.Index(
                fields=["tenant", "end_reason", "-started_at"], name="call_list_end_reason"
            ),
            models.Index(
                fields=["tenant", "consent_scope", "-started_at"], name="call_list_consent"
            ),
            models.Index(fields=["tenant", "duration_ms"], name="call_list_duration"),
            models.Index(fields=["tenant", "billed_amount"], name="call_list_billed"),
            models.Index(
                fields=["tenant", "-started_at"],
                condition=models.Q(legal_hold=True),
                name="call_list_on_hold",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(consent_scope__in=ConsentScope.values),
                name="call_consent_scope_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.agent_name} v{self.version_number})"

    @property
    def group_name(self) -> str:
        """The call's group on the channel layer, through which other processes reach it."""
        return f"call.{self.public_id}"

    @property
    def stores_transcript(self) -> bool:
        """Whether the transcript (with tool arguments and results) is written: the caller
        consented to it and the retention policy keeps it."""
        return self.keeps_transcript and self.consent_scope in (
            ConsentScope.TRANSCRIPT,
            ConsentScope.RECORDING,
        )

    @property
    def stores_recording(self) -> bool:
        """Whether the call's audio is recorded: consent covers recording (which implies the
        transcript) and the policy keeps both."""
        return self.stores_transcript and (
            self.keeps_recording and self.consent_scope == ConsentScope.RECORDING
        )


class TranscriptRole(models.TextChoices):
    USER = "user", "Caller"
    ASSISTANT = "assistant", "Agent"
    TOOL = "tool", "Tool"
    SYSTEM = "system", "Instructions"


class TranscriptItem(models.Model):
    """One turn of a consented call: the caller's transcription or the agent's speech,
    or a tool call with its result. The caller's text is a separate speech-to-text pass
    of their audio, not what the model heard."""

    call = models.ForeignKey(CallSession, on_delete=models.CASCADE, related_name="transcript")
    sequence = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=TranscriptRole.choices)
    item_id = models.CharField(max_length=80, blank=True)
    text = models.TextField(blank=True)
    tool_name = models.CharField(max_length=64, blank=True)
    tool_arguments = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="End of the caller's speech to the agent's first audio."
    )
    interrupted = models.BooleanField(default=False)
    typed = models.BooleanField(
        default=False,
        help_text="Sent as text by the client (typed by the caller, or a message the client "
        "added), not heard or spoken.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["call", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["call", "sequence"], name="transcript_sequence_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.call.public_id} #{self.sequence} {self.role}"


class UsageRecord(models.Model):
    """Token usage of one model response (``response.done``), as the provider reported it."""

    call = models.ForeignKey(CallSession, on_delete=models.CASCADE, related_name="usage")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_records")
    response_id = models.CharField(max_length=80)
    provider = models.CharField(max_length=16)
    model = models.CharField(max_length=80)
    created_at = models.DateTimeField(default=timezone.now)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    input_text_tokens = models.PositiveIntegerField(default=0)
    input_audio_tokens = models.PositiveIntegerField(default=0)
    input_image_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cached_text_tokens = models.PositiveIntegerField(default=0)
    cached_audio_tokens = models.PositiveIntegerField(default=0)
    cached_image_tokens = models.PositiveIntegerField(default=0)
    output_text_tokens = models.PositiveIntegerField(default=0)
    output_audio_tokens = models.PositiveIntegerField(default=0)
    # Priced when stored, with the price in force then; None: the model has no price.
    price = models.ForeignKey(
        "billing.ModelPrice", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    cost = models.DecimalField(max_digits=20, decimal_places=9, null=True, blank=True)

    class Meta:
        ordering = ["call", "created_at"]
        indexes = [models.Index(fields=["tenant", "created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["call", "response_id"], name="usage_response_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.call.public_id} {self.response_id}: {self.total_tokens} tokens"

    @classmethod
    def fields_from_usage(cls, usage: dict[str, Any]) -> dict[str, int]:
        """Map a Realtime ``usage`` object onto this model's columns."""

        def number(mapping: Any, key: str) -> int:
            value = mapping.get(key) if isinstance(mapping, dict) else None
            return value if isinstance(value, int) and value >= 0 else 0

        inputs = usage.get("input_token_details") or {}
        cached = inputs.get("cached_tokens_details") or {} if isinstance(inputs, dict) else {}
        outputs = usage.get("output_token_details") or {}
        return {
            "input_tokens": number(usage, "input_tokens"),
            "output_tokens": number(usage, "output_tokens"),
            "total_tokens": number(usage, "total_tokens"),
            "input_text_tokens": number(inputs, "text_tokens"),
            "input_audio_tokens": number(inputs, "audio_tokens"),
            "input_image_tokens": number(inputs, "image_tokens"),
            "cached_tokens": number(inputs, "cached_tokens"),
            "cached_text_tokens": number(cached, "text_tokens"),
            "cached_audio_tokens": number(cached, "audio_tokens"),
            "cached_image_tokens": number(cached, "image_tokens"),
            "output_text_tokens": number(outputs, "text_tokens"),
            "output_audio_tokens": number(outputs, "audio_tokens"),
        }


class SessionToken(models.Model):
    """A short-lived, single-use token that lets one browser open one call with one agent.

    Like OpenAI's ephemeral client secrets: minted by a backend (secret key) or the widget
    endpoint (publishable key + origin); only its digest is stored.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="session_tokens")
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.CASCADE, related_name="session_tokens"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WIDGET)
    origin = models.CharField(max_length=200, blank=True)
    end_user_ref = models.CharField(max_length=200, blank=True)
    consent_scope = models.CharField(
        max_length=16, choices=ConsentScope.choices, default=ConsentScope.NONE
    )
    consent_method = models.CharField(max_length=20, choices=ConsentMethod.choices, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_text = models.TextField(blank=True)
    consent_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"session token for {self.agent_id} (expires {self.expires_at:%H:%M:%S})"

    @classmethod
    def issue(cls, *, ttl: timedelta, **fields: Any) -> tuple[SessionToken, str]:
        value = "ek_" + public_id("x", 40)[2:]
        token = cls.objects.create(
            token_hash=hash_secret(value), expires_at=timezone.now() + ttl, **fields
        )
        return token, value

    @classmethod
    def redeem(cls, value: str) -> SessionToken | None:
        """Use a token once: the atomic update makes a second use fail on any process."""
        if not value.startswith("ek_"):
            return None
        digest = hash_secret(value)
        now = timezone.now()
        claimed = cls.objects.filter(
            token_hash=digest, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        if not claimed:
            return None
        return cls.objects.select_related("tenant").get(token_hash=digest)


def recording_path(recording: Recording, filename: str) -> str:
    return f"recordings/{recording.tenant.public_id}/{filename}"


class RecordingStatus(models.TextChoices):
    RECORDING = "recording", "Recording"
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"


class Recording(models.Model):
    """A call's audio as a stereo 24 kHz PCM16 WAV (caller left, agent right), written
    through Django's default storage while the call runs; only under recording consent."""

    call = models.OneToOneField(CallSession, on_delete=models.CASCADE, related_name="recording")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="recordings")
    file = models.FileField(upload_to=recording_path, max_length=300, blank=True)
    status = models.CharField(
        max_length=12, choices=RecordingStatus.choices, default=RecordingStatus.RECORDING
    )
    sample_rate = models.PositiveIntegerField(default=24000)
    channels = models.PositiveSmallIntegerField(default=2)
    duration_ms = models.PositiveBigIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "started_at"])]

    def __str__(self) -> str:
        return f"recording of {self.call.public_id}"
