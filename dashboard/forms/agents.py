"""Forms for agents and their widget keys, and the widget-key changes the dashboard makes."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.utils import timezone

from agents.models import (
    LOCAL_MODEL,
    OPENAI_MODELS,
    OPENAI_VOICES,
    Agent,
    AgentVersion,
    WidgetKey,
    normalize_origin,
)
from agents.versions import save_agent
from dashboard.forms.base import TenantModelForm
from tenancy.models import ProviderCredential
from tenancy.scoping import for_tenant
from tools.models import ToolDefinition

MAX_ORIGINS_PER_KEY = 20

# Suggestions offered in the model and voice inputs (a <datalist>): Azure deployments
# and the built-in provider take other values, so these are hints, not choices.
MODEL_SUGGESTIONS = [LOCAL_MODEL, *OPENAI_MODELS]
VOICE_SUGGESTIONS = OPENAI_VOICES


AGENT_FIELDSETS: list[tuple[str, list[str]]] = [
    ("Basics", ["name", "instructions", "greeting", "language"]),
    ("Voice & model", ["provider", "model", "credential", "voice", "audio_format", "temperature"]),
    (
        "Turn detection",
        [
            "turn_detection",
            "vad_threshold",
            "vad_prefix_padding_ms",
            "vad_silence_duration_ms",
            "semantic_eagerness",
        ],
    ),
    ("Call limits", ["max_call_duration_seconds", "idle_timeout_seconds"]),
    ("Tools", ["tools"]),
    ("Consent", ["consent_prompt", "recording_offered"]),
    ("Realtime clients", ["client_may_override"]),
]


class ToolChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} — {obj.get_kind_display()}"


class AgentForm(TenantModelForm):
    """The whole configuration of an agent; saving records a new version."""

    # Public ids, not database ids, travel in the form: ids shown to users are opaque.
    credential = forms.ModelChoiceField(
        queryset=ProviderCredential.objects.none(),
        to_field_name="public_id",
        required=False,
        empty_label="The operator's default key",
        help_text="The tenant's own key; empty uses the operator's default.",
    )
    tools = ToolChoiceField(
        queryset=ToolDefinition.objects.none(),
        to_field_name="public_id",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Functions the agent may call during a call.",
    )

    class Meta:
        model = Agent
        fields = [name for _, names in AGENT_FIELDSETS for name in names]
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 10}),
            "greeting": forms.Textarea(attrs={"rows": 2}),
            "consent_prompt": forms.Textarea(attrs={"rows": 3}),
            "model": forms.TextInput(attrs={"list": "model-suggestions"}),
            "voice": forms.TextInput(attrs={"list": "voice-suggestions"}),
            "temperature": forms.NumberInput(attrs={"step": "0.1"}),
            "vad_threshold": forms.NumberInput(attrs={"step": "0.05"}),
        }
        labels = {
            "turn_detection": "Turn detection",
            "vad_threshold": "VAD threshold",
            "semantic_eagerness": "Eagerness",
            "max_call_duration_seconds": "Maximum call length (seconds)",
            "idle_timeout_seconds": "Idle timeout (seconds)",
            "recording_offered": "Offer audio recording",
            "client_may_override": "Clients may override the configuration",
        }
        help_texts = {
            "instructions": "What the agent is, what it should do and how it should speak.",
            "voice": "For OpenAI and Azure, one of: " + ", ".join(OPENAI_VOICES) + ".",
            "vad_threshold": "Server VAD: 0 to 1; higher needs louder speech to start a turn.",
            "vad_prefix_padding_ms": "Server VAD: audio kept from before speech was detected.",
            "vad_silence_duration_ms": "Server VAD: how long a pause ends the caller's turn.",
            "semantic_eagerness": "Semantic VAD: how soon the model takes its turn.",
            "max_call_duration_seconds": "Calls end after this long (30 to 3600).",
            "consent_prompt": "Asked at the start of the call; the answer decides what is kept.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        credential_field = cast(forms.ModelChoiceField, self.fields["credential"])
        credential_field.queryset = for_tenant(ProviderCredential, self.tenant)
        tools_field = cast(forms.ModelMultipleChoiceField, self.fields["tools"])
        tools_field.queryset = for_tenant(ToolDefinition, self.tenant).order_by("name")
        if self.instance.credential_id and self.instance.credential is not None:
            # model_to_dict gives the database id; the field speaks public ids.
            self.initial["credential"] = self.instance.credential.public_id

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        taken = for_tenant(Agent, self.tenant).filter(name=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError(
                "An agent named “%(name)s” already exists.", params={"name": name}
            )
        return name

    def fieldsets(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in AGENT_FIELDSETS]

    def save_version(self, user: AbstractBaseUser | AnonymousUser) -> AgentVersion:
        """Save the agent and its tools; every change becomes a new immutable version."""
        agent = super().save(commit=False)
        return save_agent(agent, self.cleaned_data["tools"], user)


class WidgetKeyForm(forms.Form):
    allowed_origins = forms.CharField(
        label="Allowed origins",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://shop.example"}),
        help_text="One origin per line (scheme://host[:port], no path), "
        "e.g. https://shop.example. The widget only works on these sites.",
    )

    def clean_allowed_origins(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["allowed_origins"].splitlines()]
        origins: list[str] = []
        errors: list[ValidationError] = []
        for line in filter(None, lines):
            try:
                origin = normalize_origin(line)
            except ValidationError as error:
                errors.append(error)
                continue
            except ValueError:
                # urlsplit raises ValueError for e.g. a bad port or a broken IPv6 host.
                errors.append(
                    ValidationError("%(value)s is not an origin.", params={"value": line})
                )
                continue
            if origin not in origins:
                origins.append(origin)
        if errors:
            raise ValidationError(errors)
        if not origins:
            raise ValidationError("List at least one origin the widget may be embedded on.")
        if len(origins) > MAX_ORIGINS_PER_KEY:
            raise ValidationError(
                "At most %(limit)s origins per key.", params={"limit": MAX_ORIGINS_PER_KEY}
            )
        return origins

    def save(self, agent: Agent) -> WidgetKey:
        return WidgetKey.objects.create(
            agent=agent, allowed_origins=self.cleaned_data["allowed_origins"]
        )


def revoke_widget_key(widget_key: WidgetKey) -> None:
    """Revoked keys stay listed (greyed out) so an owner can see what used to work."""
    if widget_key.revoked_at is None:
        widget_key.revoked_at = timezone.now()
        widget_key.save(update_fields=["revoked_at"])


def embed_snippet(site: str, widget_key: WidgetKey) -> str:
    return (
        f'<script src="{site}/static/koe/widget.js" data-key="{widget_key.key}" '
        f'data-agent="{widget_key.agent.public_id}" async></script>'
    )
