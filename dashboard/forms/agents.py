"""Forms for agents and their widget keys, and the widget-key changes the dashboard makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.utils import timezone

from agents.models import (
    LOCAL_MODEL,
    MAX_FAQ_ANSWER_LENGTH,
    MAX_FAQ_ENTRIES,
    MAX_FAQ_QUESTION_LENGTH,
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
from tools.actions import ensure_builtin_tools
from tools.models import ToolDefinition, ToolKind

MAX_ORIGINS_PER_KEY = 20

# Suggestions offered in the model and voice inputs (a <datalist>): Azure deployments
# and the built-in provider take other values, so these are hints, not choices.
MODEL_SUGGESTIONS = [LOCAL_MODEL, *OPENAI_MODELS]
VOICE_SUGGESTIONS = OPENAI_VOICES


AGENT_FIELDSETS: list[tuple[str, list[str]]] = [
    ("Basics", ["name", "instructions", "greeting", "greet_api_callers", "language"]),
    ("Questions and answers", ["faq"]),
    (
        "Voice & model",
        [
            "provider",
            "response_engine",
            "model",
            "credential",
            "voice",
            "audio_format",
            "temperature",
        ],
    ),
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
    ("Consent", ["consent_prompt", "recording_offered", "consent_required"]),
    ("Widget", ["widget_label", "widget_color", "widget_position"]),
    ("Phone", ["transfer_number", "voicemail_action", "voicemail_message"]),
    (
        "Realtime clients",
        [
            "client_may_override",
            "client_functions",
            "tool_calls_shown",
            "strict_client_settings",
            "show_configuration_to_browsers",
        ],
    ),
]


# --- the FAQ as text -------------------------------------------------------------------------

FAQ_QUESTION_PREFIX = "Q:"
FAQ_ANSWER_PREFIX = "A:"
FAQ_EXAMPLE = "Q: When are you open?\nA: Every day from noon to eleven."


def faq_as_text(entries: list[dict[str, str]]) -> str:
    """The FAQ as the dashboard edits it: "Q: …" and "A: …" lines, a blank line between."""
    return "\n\n".join(
        f"{FAQ_QUESTION_PREFIX} {entry['question']}\n{FAQ_ANSWER_PREFIX} {entry['answer']}"
        for entry in entries
    )


@dataclass
class _FaqBlock:
    """One entry being read: where its question and answer start, and their lines."""

    question_line: int
    question: list[str] = field(default_factory=list)
    answer_line: int = 0
    answer: list[str] = field(default_factory=list)
    is_broken: bool = False  # already reported; its other lines are skipped


def parse_faq_text(text: str) -> list[dict[str, str]]:
    """Read "Q: …" / "A: …" entries; raises ValidationError naming the lines at fault.

    Entries are separated by blank lines (a new "Q:" line also starts one); a question or
    answer may go on over several lines, which are joined with spaces.
    """
    entries: list[dict[str, str]] = []
    problems: list[str] = []

    def finish(block: _FaqBlock | None) -> None:
        if block is None or block.is_broken:
            return
        question = " ".join(" ".join(block.question).split())
        answer = " ".join(" ".join(block.answer).split())
        if not question:
            problems.append(f"Line {block.question_line}: the question is empty.")
        elif len(question) > MAX_FAQ_QUESTION_LENGTH:
            problems.append(
                f"Line {block.question_line}: the question is longer than "
                f"{MAX_FAQ_QUESTION_LENGTH} characters (it has {len(question)})."
            )
        if not block.answer_line:
            problems.append(
                f"Line {block.question_line}: the question has no answer: "
                f"add a line “{FAQ_ANSWER_PREFIX} …” after it."
            )
        elif not answer:
            problems.append(f"Line {block.answer_line}: the answer is empty.")
        elif len(answer) > MAX_FAQ_ANSWER_LENGTH:
            problems.append(
                f"Line {block.answer_line}: the answer is longer than "
                f"{MAX_FAQ_ANSWER_LENGTH} characters (it has {len(answer)})."
            )
        entries.append({"question": question, "answer": answer})

    block: _FaqBlock | None = None
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        prefix = line[:2].upper()
        if not line:
            finish(block)
            block = None
        elif prefix == FAQ_QUESTION_PREFIX:
            finish(block)
            block = _FaqBlock(question_line=number, question=[line[2:]])
        elif block is not None and block.is_broken:
            continue
        elif block is None and prefix == FAQ_ANSWER_PREFIX:
            problems.append(
                f"Line {number}: this answer has no question: put a line "
                f"“{FAQ_QUESTION_PREFIX} …” right above it, with no blank line between."
            )
            block = _FaqBlock(question_line=number, is_broken=True)
        elif block is None:
            problems.append(
                f"Line {number}: start each entry with a line “{FAQ_QUESTION_PREFIX} …” "
                f"(the question), then a line “{FAQ_ANSWER_PREFIX} …” (the answer)."
            )
            block = _FaqBlock(question_line=number, is_broken=True)
        elif prefix == FAQ_ANSWER_PREFIX and block.answer_line:
            problems.append(
                f"Line {number}: the question on line {block.question_line} already has an "
                "answer: leave a blank line, then start the next entry with "
                f"“{FAQ_QUESTION_PREFIX} …”."
            )
            block.is_broken = True
        elif prefix == FAQ_ANSWER_PREFIX:
            block.answer_line = number
            block.answer.append(line[2:])
        elif block.answer_line:
            block.answer.append(line)
        else:
            block.question.append(line)
    finish(block)
    if len(entries) > MAX_FAQ_ENTRIES:
        problems.append(
            f"At most {MAX_FAQ_ENTRIES} questions and answers (there are {len(entries)})."
        )
    if problems:
        raise ValidationError(problems, code="invalid_faq")
    return entries


class FaqField(forms.Field):
    """The FAQ as one textarea of "Q: …" / "A: …" entries, stored as a list of objects."""

    widget = forms.Textarea(attrs={"rows": 12, "placeholder": FAQ_EXAMPLE, "spellcheck": "true"})

    def prepare_value(self, value: Any) -> Any:
        # A list comes from the agent; text is what was typed, shown back as it was.
        return faq_as_text(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[dict[str, str]]:
        if isinstance(value, list):
            return value
        return parse_faq_text("" if value is None else str(value))


# --- agents ----------------------------------------------------------------------------------


class ToolChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        if obj.kind == ToolKind.BUILTIN:
            return f"{obj.name} — Built-in: {obj.get_builtin_name_display()}"
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
        help_text="Functions the agent may call during a call. The built-ins (end the call, "
        "transfer to a human, the current time) are always offered.",
    )
    faq = FaqField(
        label="Questions and answers",
        required=False,
        help_text=f"What callers ask and what to answer. Write each question on a line "
        f"starting with “{FAQ_QUESTION_PREFIX}”, its answer on the next starting with "
        f"“{FAQ_ANSWER_PREFIX}”, and leave a blank line between entries. On the built-in "
        "provider, the scripted engine answers questions close to these; the language "
        "model reads them as reference.",
    )

    class Meta:
        model = Agent
        fields = [name for _, names in AGENT_FIELDSETS for name in names]
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 10}),
            "greeting": forms.Textarea(attrs={"rows": 2}),
            "consent_prompt": forms.Textarea(attrs={"rows": 3}),
            "voicemail_message": forms.Textarea(attrs={"rows": 2}),
            "widget_color": forms.TextInput(attrs={"type": "color"}),
            "model": forms.TextInput(attrs={"list": "model-suggestions"}),
            "voice": forms.TextInput(attrs={"list": "voice-suggestions"}),
            "temperature": forms.NumberInput(attrs={"step": "0.1"}),
            "vad_threshold": forms.NumberInput(attrs={"step": "0.05"}),
        }
        labels = {
            "response_engine": "Response engine",
            "turn_detection": "Turn detection",
            "vad_threshold": "VAD threshold",
            "semantic_eagerness": "Eagerness",
            "max_call_duration_seconds": "Maximum call length (seconds)",
            "idle_timeout_seconds": "Idle timeout (seconds)",
            "recording_offered": "Offer audio recording",
            "consent_required": "Require consent",
            "widget_label": "Button label",
            "widget_color": "Colour",
            "widget_position": "Position",
            "client_may_override": "Clients may override the configuration",
            "client_functions": "Functions the client runs",
            "tool_calls_shown": "Show the agent's tool calls to clients",
            "greet_api_callers": "Greet API callers too",
            "strict_client_settings": "Refuse changes to protected settings",
            "show_configuration_to_browsers": "Show instructions and tools to browsers",
            "transfer_number": "Transfer number",
            "voicemail_action": "On an answering machine",
        }
        help_texts = {
            "instructions": "What the agent is, what it should do and how it should speak.",
            "voice": "For OpenAI and Azure, one of: " + ", ".join(OPENAI_VOICES) + ".",
            "vad_threshold": "Server VAD: 0 to 1; higher needs louder speech to start a turn.",
            "vad_prefix_padding_ms": "Server VAD: audio kept from before speech was detected.",
            "vad_silence_duration_ms": "Server VAD: how long a pause ends the caller's turn.",
            "semantic_eagerness": "Semantic VAD: how soon the model takes its turn.",
            "max_call_duration_seconds": "Calls end after this long (30 to 14400: four hours).",
            "consent_prompt": "Asked at the start of the call; the answer decides what is kept.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        credential_field = cast(forms.ModelChoiceField, self.fields["credential"])
        credential_field.queryset = for_tenant(ProviderCredential, self.tenant)
        # The built-ins are offered like any tool, even to a tenant that never made them.
        ensure_builtin_tools(self.tenant)
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
