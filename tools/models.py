"""Tool definitions: the functions a tenant's agents may call, and how they run."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from foundation.encryption import EncryptedTextField
from foundation.ids import public_id
from foundation.outbound import validate_url_for_saving
from tenancy.models import Tenant
from tools.mock import placeholder_names
from tools.schema import EMPTY_PARAMETERS, validate_function_name, validate_parameters_schema

MAX_EXAMPLE_PHRASES = 20
MAX_EXAMPLE_PHRASE_LENGTH = 200
MAX_MOCK_RESPONSE_LENGTH = 2000


def new_tool_id() -> str:
    return public_id("tool")


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def default_parameters() -> dict[str, Any]:
    return dict(EMPTY_PARAMETERS)


class ToolKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (HTTP request to your server)"
    BUILTIN = "builtin", "Built-in"
    MCP = "mcp", "MCP server"
    MOCK = "mock", "Mock reply (a fixed response, for demos and testing)"


class Execution(models.TextChoices):
    INLINE = "inline", "Inline (the caller waits, up to the timeout)"
    BACKGROUND = "background", "Background (Celery; the call goes on meanwhile)"


class BuiltinTool(models.TextChoices):
    END_CALL = "end_call", "End the call politely"
    TRANSFER_TO_HUMAN = "transfer_to_human", "Transfer to a human"
    CURRENT_TIME = "current_time", "Current time in the tenant's time zone"


class HttpMethod(models.TextChoices):
    POST = "POST", "POST"
    PUT = "PUT", "PUT"
    PATCH = "PATCH", "PATCH"
    GET = "GET", "GET"
    DELETE = "DELETE", "DELETE"


def validate_http_url(value: str) -> None:
    """A URL Koe may call: http(s), and no address (however spelled) that is not public."""
    if value and not value.lower().startswith(("http://", "https://")):
        raise ValidationError("Only http:// and https:// URLs are allowed.", code="scheme")
    validate_url_for_saving(value)


def validate_headers_json(value: str) -> None:
    if not value:
        return
    try:
        headers = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValidationError(
            'Headers must be a JSON object, e.g. {"X-Api-Key": "..."}: %(error)s',
            code="invalid_json",
            params={"error": error.msg},
        ) from error
    if not isinstance(headers, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in headers.items()
    ):
        raise ValidationError(
            "Headers must be a JSON object of string names to string values.", code="not_object"
        )


def clean_example_phrases(value: Any) -> tuple[list[str], list[str]]:
    """The phrases with their spaces tidied, and what is wrong with them (no messages: valid).

    Line breaks become spaces too: a phrase is one thing a caller says.
    """
    if not isinstance(value, list) or not all(isinstance(phrase, str) for phrase in value):
        return [], ['A list of phrases (text), e.g. ["book a table", "a table for two"].']
    phrases = [" ".join(phrase.split()) for phrase in value]
    problems: list[str] = []
    if len(phrases) > MAX_EXAMPLE_PHRASES:
        problems.append(
            f"At most {MAX_EXAMPLE_PHRASES} example phrases (there are {len(phrases)})."
        )
    for number, phrase in enumerate(phrases, start=1):
        if not phrase:
            problems.append(f"Phrase {number} is empty.")
        elif len(phrase) > MAX_EXAMPLE_PHRASE_LENGTH:
            problems.append(
                f"Phrase {number} is longer than {MAX_EXAMPLE_PHRASE_LENGTH} characters "
                f"(it has {len(phrase)})."
            )
    return phrases, problems


def select_mcp_tools(listed: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """The listed remote tools that the tenant selected (no names: all), in the server's order."""
    if not names:
        return list(listed)
    wanted = set(names)
    return [remote for remote in listed if remote.get("name") in wanted]


class ToolDefinition(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=new_tool_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(
        max_length=64,
        validators=[validate_function_name],
        help_text="The function name the model calls, e.g. book_table.",
    )
    description = models.TextField(
        max_length=1024, help_text="Tells the model when and how to use the tool."
    )
    parameters = models.JSONField(
        default=default_parameters,
        validators=[validate_parameters_schema],
        help_text="JSON Schema of the arguments (an object schema).",
    )
    kind = models.CharField(max_length=16, choices=ToolKind.choices, default=ToolKind.WEBHOOK)
    execution = models.CharField(max_length=16, choices=Execution.choices, default=Execution.INLINE)
    timeout_seconds = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(300)]
    )
    retry_safe = models.BooleanField(
        default=True,
        help_text="Background tools: if the worker running it dies, run it again (with the same "
        "Idempotency-Key, so the receiver can tell). Off: a run that may have started is "
        "reported as failed, never repeated.",
    )
    example_phrases = models.JSONField(
        default=list,
        blank=True,
        help_text="What callers say to ask for this tool, e.g. “book a table”; the built-in "
        "provider's scripted engine recognises requests by them.",
    )

    # webhook
    webhook_url = models.URLField(
        max_length=500, blank=True, validators=[validate_http_url], verbose_name="Webhook URL"
    )
    http_method = models.CharField(max_length=8, choices=HttpMethod.choices, default="POST")
    webhook_headers = EncryptedTextField(
        blank=True,
        validators=[validate_headers_json],
        help_text="Extra request headers as a JSON object; stored encrypted.",
    )
    signing_secret = EncryptedTextField(default=new_signing_secret, editable=False)

    # built-in
    builtin_name = models.CharField(
        max_length=32, choices=BuiltinTool.choices, blank=True, verbose_name="Built-in tool"
    )

    # MCP
    mcp_server_url = models.URLField(
        max_length=500, blank=True, validators=[validate_http_url], verbose_name="MCP server URL"
    )
    mcp_auth_header = EncryptedTextField(
        blank=True,
        verbose_name="MCP Authorization header",
        help_text="Sent as the Authorization header, e.g. 'Bearer …'; stored encrypted.",
    )
    mcp_tool_names = models.JSONField(
        default=list, blank=True, help_text="The server's tools to expose (empty: all)."
    )
    # What the server listed ({"name", "description", "input_schema"} each) when the tool
    # was last saved; a failed listing keeps the previous one (see tools.actions).
    mcp_tools_listed = models.JSONField(default=list, blank=True, editable=False)
    mcp_tools_listed_at = models.DateTimeField(null=True, blank=True, editable=False)

    # mock
    mock_response = models.TextField(
        blank=True,
        max_length=MAX_MOCK_RESPONSE_LENGTH,
        verbose_name="Mock reply",
        help_text="What the tool answers. {argument_name} placeholders are filled from the "
        "call's arguments, e.g. “Your table for {party_size} at {time} is booked.”",
    )

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="tool_name_unique_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(kind__in=ToolKind.values), name="tool_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        errors: dict[str, str | list[str]] = {}
        if self.kind == ToolKind.WEBHOOK and not self.webhook_url:
            errors["webhook_url"] = "A webhook tool needs the URL to call."
        if self.kind == ToolKind.BUILTIN and not self.builtin_name:
            errors["builtin_name"] = "Choose which built-in tool this is."
        if self.kind == ToolKind.MCP and not self.mcp_server_url:
            errors["mcp_server_url"] = "An MCP tool needs the server's URL."
        if not isinstance(self.mcp_tool_names, list) or not all(
            isinstance(name, str) for name in self.mcp_tool_names
        ):
            errors["mcp_tool_names"] = "A list of tool names."
        phrases, problems = clean_example_phrases(self.example_phrases)
        if problems:
            errors["example_phrases"] = problems
        else:
            self.example_phrases = phrases
        if self.kind == ToolKind.MOCK:
            problem = self._mock_response_problem()
            if problem:
                errors["mock_response"] = problem
        if errors:
            raise ValidationError(errors)

    def parameter_names(self) -> list[str]:
        """The names of the arguments the parameters schema declares."""
        properties = (
            self.parameters.get("properties") if isinstance(self.parameters, dict) else None
        )
        return list(properties) if isinstance(properties, dict) else []

    def _mock_response_problem(self) -> str:
        if not (self.mock_response or "").strip():
            return "A mock tool needs the reply to give."
        known = self.parameter_names()
        unknown = [name for name in placeholder_names(self.mock_response) if name not in known]
        if not unknown:
            return ""
        listed = ", ".join("{" + name + "}" for name in unknown)
        if known:
            return f"Unknown placeholders: {listed}. Use the parameters' names: {', '.join(known)}."
        return f"Unknown placeholders: {listed}. The parameters declare no properties."

    @property
    def headers(self) -> dict[str, str]:
        return json.loads(self.webhook_headers) if self.webhook_headers else {}

    def snapshot(self) -> dict[str, Any]:
        """What an agent version records of this tool (no secrets)."""
        snapshot: dict[str, Any] = {
            "id": self.public_id,
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "kind": self.kind,
            "execution": self.execution,
            "timeout_seconds": self.timeout_seconds,
            "retry_safe": self.retry_safe,
            "builtin_name": self.builtin_name,
            "webhook_url": self.webhook_url,
            "http_method": self.http_method,
            "mcp_server_url": self.mcp_server_url,
            "mcp_tool_names": self.mcp_tool_names,
            "example_phrases": self.example_phrases,
        }
        if self.kind == ToolKind.MOCK:
            snapshot["mock_response"] = self.mock_response
        if self.kind == ToolKind.MCP:
            snapshot["mcp_tools"] = select_mcp_tools(self.mcp_tools_listed, self.mcp_tool_names)
        return snapshot


# Invocations live in their own module; Django finds models through this one.
from tools.invocations import ToolInvocation  # noqa: E402, F401
