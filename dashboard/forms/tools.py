"""Forms for tool definitions, and the tool changes the dashboard makes beyond a form save."""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn, cast

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput, JSONString
from django.urls import reverse

from dashboard.forms.base import TenantModelForm
from tenancy.scoping import for_tenant
from tools.actions import save_tool
from tools.mcp_servers import SAVE_LISTING_TIMEOUT_SECONDS, McpListing, list_tools_of
from tools.models import (
    MAX_EXAMPLE_PHRASE_LENGTH,
    MAX_EXAMPLE_PHRASES,
    ToolDefinition,
    ToolKind,
    default_parameters,
    validate_http_url,
)
from tools.samples import sample_arguments
from tools.schema import FUNCTION_NAME_PATTERN
from tools.trials import function_of, remote_tools

User = AbstractBaseUser | AnonymousUser

MAX_JSON_LENGTH = 50_000
MAX_JSON_DEPTH = 32

# Shared fields first, then one fieldset per kind (tool-form.js shows only the chosen one).
TOOL_FIELDSETS: list[tuple[str, str, list[str]]] = [
    ("Function", "", ["name", "description", "parameters", "example_phrases"]),
    ("Execution", "", ["kind", "execution", "timeout_seconds", "retry_safe"]),
    ("Webhook", ToolKind.WEBHOOK, ["webhook_url", "http_method", "webhook_headers"]),
    ("Built-in", ToolKind.BUILTIN, ["builtin_name"]),
    ("MCP server", ToolKind.MCP, ["mcp_server_url", "mcp_auth_header", "mcp_tool_names"]),
    ("Mock reply", ToolKind.MOCK, ["mock_response"]),
]


def _reject_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON: PostgreSQL's jsonb would refuse them at save time.
    raise ValueError(f"{name} is not allowed in JSON")


def parse_json_text(text: str) -> Any:
    """json.loads with an error message a person can act on ("Line 3: …")."""
    if len(text) > MAX_JSON_LENGTH:
        raise ValidationError(
            "At most %(limit)s characters of JSON.",
            code="too_long",
            params={"limit": MAX_JSON_LENGTH},
        )
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as error:
        raise ValidationError("The JSON is nested too deeply.", code="too_deep") from error
    except json.JSONDecodeError as error:
        raise ValidationError(
            "Line %(line)s: %(message)s (column %(column)s).",
            code="invalid_json",
            params={"line": error.lineno, "message": error.msg, "column": error.colno},
        ) from error
    except ValueError as error:
        raise ValidationError(
            "%(message)s.", code="invalid_json", params={"message": error}
        ) from error
    if _depth(value) > MAX_JSON_DEPTH:
        # Schema validation recurses through the document: bound it before it runs.
        raise ValidationError(
            "The JSON is nested more than %(limit)s levels deep.",
            code="too_deep",
            params={"limit": MAX_JSON_DEPTH},
        )
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest; iterative, so deep input cannot overflow the stack."""
    deepest = 0
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return deepest


class JsonTextField(forms.JSONField):
    """A JSON textarea that says where the JSON is broken and shows it indented."""

    widget = forms.Textarea(attrs={"rows": 12, "spellcheck": "false"})

    def to_python(self, value: Any) -> Any:
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, list | dict | int | float | JSONString):
            return value
        converted = parse_json_text(value)
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled:
            return initial
        if data is None:
            return None
        # Show back exactly what was typed (InvalidJSONInput marks raw text for Django),
        # rather than re-parsing input that may be broken or absurdly deep.
        return InvalidJSONInput(data)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class HiddenValueTextarea(forms.Textarea):
    """A textarea that never renders its value: secrets are not sent back to the browser."""

    def format_value(self, value: Any) -> None:
        return None


class TextListField(forms.Field):
    """A list edited as text, one item a line; subclasses split and check the text."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        return self.parse("" if value is None else str(value))

    def parse(self, text: str) -> list[str]:
        raise NotImplementedError


class NameListField(TextListField):
    """Names separated by commas or new lines, stored as a list."""

    def parse(self, text: str) -> list[str]:
        names = [name.strip() for name in re.split(r"[,\n]", text)]
        unique: list[str] = []
        for name in filter(None, names):
            if name not in unique:
                unique.append(name)
        return unique

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
        invalid = [name for name in value if not FUNCTION_NAME_PATTERN.fullmatch(name)]
        if invalid:
            raise ValidationError(
                "Not valid tool names: %(names)s. Use letters, digits, underscores or hyphens.",
                code="invalid_name",
                params={"names": ", ".join(invalid)},
            )


class PhraseListField(TextListField):
    """Phrases one per line, stored as a list; blank lines and repeats are dropped."""

    widget = forms.Textarea(attrs={"rows": 4})

    def parse(self, text: str) -> list[str]:
        phrases: list[str] = []
        problems: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            phrase = " ".join(line.split())
            if len(phrase) > MAX_EXAMPLE_PHRASE_LENGTH:
                problems.append(
                    f"Line {number} is longer than {MAX_EXAMPLE_PHRASE_LENGTH} characters "
                    f"(it has {len(phrase)})."
                )
            elif phrase and phrase not in phrases:
                phrases.append(phrase)
        if len(phrases) > MAX_EXAMPLE_PHRASES:
            problems.append(
                f"At most {MAX_EXAMPLE_PHRASES} example phrases (there are {len(phrases)})."
            )
        if problems:
            raise ValidationError(problems, code="invalid_phrases")
        return phrases


class ToolForm(TenantModelForm):
    parameters = JsonTextField(
        # Declared fields do not inherit the model default: a new tool starts from it here.
        initial=default_parameters,
        label="Parameters (JSON Schema)",
        help_text='A JSON Schema object, e.g. {"type": "object", "properties": '
        '{"order_number": {"type": "string"}}, "required": ["order_number"]}.',
    )
    # Declared rather than generated so the scheme default is explicit (Django 6 changes it).
    # The model's validator here too, so clean() never asks a refused MCP server its tools.
    webhook_url = forms.URLField(
        label="Webhook URL",
        max_length=500,
        required=False,
        assume_scheme="https",
        validators=[validate_http_url],
    )
    webhook_headers = forms.CharField(
        label="Webhook headers",
        required=False,
        widget=HiddenValueTextarea(attrs={"rows": 4, "placeholder": '{"X-Api-Key": "…"}'}),
        help_text='Extra request headers as a JSON object, e.g. {"X-Api-Key": "…"}; '
        "stored encrypted.",
    )
    mcp_server_url = forms.URLField(
        label="MCP server URL",
        max_length=500,
        required=False,
        assume_scheme="https",
        validators=[validate_http_url],
    )
    mcp_auth_header = forms.CharField(
        label="MCP Authorization header",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Sent as the Authorization header, e.g. “Bearer …”; stored encrypted.",
    )
    example_phrases = PhraseListField(
        label="Example phrases",
        required=False,
        help_text="What callers say to ask for this tool, one per line, e.g. “book a table” "
        "or “a table for four tonight”. The built-in provider's scripted engine recognises "
        "requests by them and fills the arguments from what the caller said.",
    )
    mcp_tool_names = NameListField(
        label="MCP tool names",
        required=False,
        help_text="The server's tools to expose, separated by commas or new lines "
        "(empty: all of them).",
    )

    class Meta:
        model = ToolDefinition
        fields = [name for _, _, names in TOOL_FIELDSETS for name in names]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "mock_response": forms.Textarea(attrs={"rows": 3}),
        }
        labels = {
            "http_method": "HTTP method",
            "timeout_seconds": "Timeout (seconds)",
            "retry_safe": "Safe to run again",
        }
        help_texts = {
            "execution": "Background suits slow work: the agent keeps talking meanwhile.",
            "timeout_seconds": "How long a call waits for the tool (1 to 300).",
        }

    # What the MCP server listed while validating (None: not an MCP tool, or not asked).
    mcp_listing: McpListing | None = None

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.webhook_headers:
            self.fields["webhook_headers"].help_text = (
                "Headers are set (hidden); enter new JSON to replace them, {} to remove them, "
                "or leave this empty to keep them."
            )
        if self.instance.mcp_auth_header:
            self.fields["mcp_auth_header"].help_text = (
                "A header is set (hidden); enter a new one to replace it, "
                "or leave this empty to keep it."
            )
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    def fieldsets(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        return [
            (legend, kind, [self[name] for name in names]) for legend, kind, names in TOOL_FIELDSETS
        ]

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        taken = for_tenant(ToolDefinition, self.tenant).filter(name=name)
        if taken.exclude(pk=self.instance.pk).exists():
            raise ValidationError("A tool named “%(name)s” already exists.", params={"name": name})
        return name

    def clean_webhook_headers(self) -> str:
        text = self.cleaned_data["webhook_headers"].strip()
        if not text:
            # The value is never shown, so an empty box means "keep what is stored".
            return self.instance.webhook_headers or ""
        headers = parse_json_text(text)
        if not isinstance(headers, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
        ):
            raise ValidationError(
                "Headers must be a JSON object of string names to string values, "
                'e.g. {"X-Api-Key": "…"}.'
            )
        return json.dumps(headers) if headers else ""

    def clean_mcp_auth_header(self) -> str:
        value = self.cleaned_data["mcp_auth_header"].strip()
        return value or self.instance.mcp_auth_header or ""

    def clean(self) -> dict[str, Any] | None:
        """For an MCP tool, ask its server for its tools: the chosen names must be among them."""
        cleaned_data = super().clean()
        data = self.cleaned_data
        self.mcp_listing = None
        if data.get("kind") != ToolKind.MCP or not data.get("mcp_server_url"):
            return cleaned_data
        timeout = min(data.get("timeout_seconds") or 10, SAVE_LISTING_TIMEOUT_SECONDS)
        self.mcp_listing = list_tools_of(
            self.instance,
            url=data["mcp_server_url"],
            auth_header=data.get("mcp_auth_header") or "",
            timeout=float(timeout),
        )
        if self.mcp_listing.tools is not None:
            available = self.mcp_listing.names
            unknown = [name for name in data.get("mcp_tool_names") or [] if name not in available]
            if unknown:
                self.add_error(
                    "mcp_tool_names",
                    ValidationError(
                        "The server does not offer %(unknown)s. Its tools: %(available)s.",
                        code="unknown_tool",
                        params={
                            "unknown": ", ".join(unknown),
                            "available": ", ".join(available) or "none",
                        },
                    ),
                )
        return cleaned_data

    def mcp_listing_warning(self) -> str:
        """Why the server's tools could not be listed on save ("" when they were)."""
        if self.mcp_listing is None or self.mcp_listing.error is None:
            return ""
        return (
            f"The MCP server's tools could not be listed: {self.mcp_listing.error.message} "
            "The tool was saved and keeps the tools listed before; save it again once the "
            "server answers."
        )

    def save_tool(self, user: User) -> ToolDefinition:
        """Save, and re-version the agents using the tool: its definition is in their config."""
        return save_tool(self.save(commit=False), user, mcp_listing=self.mcp_listing)


class ToolTestForm(forms.Form):
    """Arguments to run a tool with now (and, for an MCP tool, which of its remote tools).

    Only broken JSON is refused here, with the text kept as typed: arguments that do not
    fit the schema run as a live call's would, and come back as the error the model gets.
    """

    remote_name = forms.ChoiceField(
        label="Remote tool", help_text="Which of the MCP server's tools to call."
    )
    arguments = forms.CharField(
        label="Arguments (JSON)",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text="The arguments the model would send, as a JSON object. The sample is made "
        "from the parameters schema; change it to try other cases.",
    )

    def __init__(
        self, data: Any = None, *, tool: ToolDefinition, remote_name: str = "", **kwargs: Any
    ) -> None:
        super().__init__(data, **kwargs)
        self.tool = tool
        remote_names = [str(remote.get("name")) for remote in remote_tools(tool)]
        if tool.kind != ToolKind.MCP:
            del self.fields["remote_name"]
            self.selected_remote = ""
        else:
            field = cast(forms.ChoiceField, self.fields["remote_name"])
            field.choices = [(name, name) for name in remote_names]
            # Choosing another remote tool fetches the panel again with its sample arguments.
            field.widget.attrs.update(
                {
                    "hx-get": reverse("dashboard:tool_test", args=[tool.public_id]),
                    "hx-target": "#tool-test",
                    "hx-trigger": "change",
                }
            )
            selected = remote_name if remote_name in remote_names else ""
            self.selected_remote = selected or (remote_names[0] if remote_names else "")
            self.initial["remote_name"] = self.selected_remote
        if self.can_run:
            _, parameters = function_of(tool, self.selected_remote)
            sample = sample_arguments(parameters)
            self.initial["arguments"] = json.dumps(sample, indent=2, ensure_ascii=False)

    @property
    def can_run(self) -> bool:
        """False for an MCP tool whose server has listed no tool to call yet."""
        return self.tool.kind != ToolKind.MCP or bool(self.selected_remote)

    def clean_arguments(self) -> str:
        text: str = self.cleaned_data["arguments"]
        parse_json_text(text)
        return text
