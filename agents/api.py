"""REST API v1 for a tenant's voice agents and their versions (mounted at /v1/agents)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import Http404, HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import ConfigDict, StrictBool, StrictFloat, StrictInt

from agents.models import (
    MAX_FAQ_ANSWER_LENGTH,
    MAX_FAQ_ENTRIES,
    MAX_FAQ_QUESTION_LENGTH,
    Agent,
    AgentVersion,
    AudioFormat,
    ClientFunctions,
    Eagerness,
    ResponseEngineKind,
    ToolCallsShown,
    TurnDetection,
    VoicemailAction,
    WidgetPosition,
)
from agents.versions import duplicate_agent, save_agent
from foundation.api import (
    OMITTED,
    Pagination,
    error_responses,
    full_clean_or_raise,
    page,
    request_tenant,
)
from tenancy.models import Provider, ProviderCredential, Tenant
from tenancy.scoping import for_tenant, get_for_tenant_or_404
from tools.models import ToolDefinition

router = Router(tags=["agents"])

# Model field -> API field, for validation messages.
FIELD_NAMES = {
    "turn_detection": "turn_detection.type",
    "vad_threshold": "turn_detection.threshold",
    "vad_prefix_padding_ms": "turn_detection.prefix_padding_ms",
    "vad_silence_duration_ms": "turn_detection.silence_duration_ms",
    "semantic_eagerness": "turn_detection.eagerness",
}
TURN_DETECTION_FIELDS = {
    "type": "turn_detection",
    "threshold": "vad_threshold",
    "prefix_padding_ms": "vad_prefix_padding_ms",
    "silence_duration_ms": "vad_silence_duration_ms",
    "eagerness": "semantic_eagerness",
}
PLAIN_FIELDS = (
    "name",
    "provider",
    "response_engine",
    "model",
    "instructions",
    "voice",
    "audio_format",
    "temperature",
    "greeting",
    "faq",
    "language",
    "max_call_duration_seconds",
    "idle_timeout_seconds",
    "consent_prompt",
    "recording_offered",
    "consent_required",
    "widget_label",
    "widget_color",
    "widget_position",
    "client_may_override",
    "client_functions",
    "tool_calls_shown",
    "greet_api_callers",
    "strict_client_settings",
    "show_configuration_to_browsers",
    "transfer_number",
    "voicemail_action",
    "voicemail_message",
)


class TurnDetectionOut(Schema):
    type: TurnDetection
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int
    eagerness: Eagerness


class FaqEntry(Schema):
    question: str
    answer: str


class AgentOut(Schema):
    id: str
    name: str
    provider: Provider
    response_engine: ResponseEngineKind = Field(
        description="How the built-in provider decides what to say; other providers ignore it."
    )
    model: str
    credential: str | None = Field(description="The id of the tenant's provider credential.")
    instructions: str
    voice: str
    audio_format: AudioFormat
    temperature: float
    turn_detection: TurnDetectionOut
    greeting: str
    faq: list[FaqEntry] = Field(description="Questions callers ask and the answers to give.")
    language: str
    max_call_duration_seconds: int
    idle_timeout_seconds: int
    tools: list[str] = Field(description="Ids of the tools the agent may call.")
    consent_prompt: str
    recording_offered: bool
    consent_required: bool = Field(description="Calls without transcript consent are refused.")
    widget_label: str
    widget_color: str = Field(description="The widget's colour, #rrggbb.")
    widget_position: WidgetPosition
    client_may_override: bool = Field(
        description="Clients may change instructions, tools, voice, output modalities and "
        "token limits, and add system and assistant messages."
    )
    client_functions: ClientFunctions = Field(
        description="Who may declare functions of their own (which the client runs): "
        "none, servers (secret key) or all (browsers too)."
    )
    tool_calls_shown: ToolCallsShown = Field(
        description="How clients see the agent's tools run: hidden, or hosted (mcp_call "
        "items, as OpenAI shows the tools it runs)."
    )
    greet_api_callers: bool = Field(
        description="Also greet callers with a secret key; widget and phone callers always are."
    )
    strict_client_settings: bool = Field(
        description="A client's change of a protected setting is refused with an error "
        "instead of dropped."
    )
    show_configuration_to_browsers: bool = Field(
        description="Browser callers (session tokens) see the instructions and tools."
    )
    transfer_number: str = Field(
        description="E.164 number phone callers are transferred to by transfer_to_human; "
        "empty: staff are asked to follow up instead."
    )
    voicemail_action: VoicemailAction = Field(
        description="When an outbound call reaches an answering machine: hang_up, or "
        "leave_message (voicemail_message, said after the beep)."
    )
    voicemail_message: str
    current_version: int | None = Field(description="Number of the agent's latest version.")
    created_at: datetime
    updated_at: datetime


class AgentList(Schema):
    items: list[AgentOut]
    count: int
    limit: int
    offset: int


class VersionSummary(Schema):
    number: int
    created_at: datetime


class VersionOut(VersionSummary):
    config: dict[str, Any] = Field(description="The configuration calls ran with (no secrets).")


class VersionList(Schema):
    items: list[VersionSummary]
    count: int
    limit: int
    offset: int


# Write schemas: every field may be left out (the model's default, or unchanged on
# PATCH); an explicit null is refused by the field's type, except for credential.
# Numbers and booleans are strict: "0.5", true or 1 for a boolean is a field error.
class TurnDetectionIn(Schema):
    model_config = ConfigDict(extra="forbid")

    type: TurnDetection = Field(OMITTED)
    threshold: StrictFloat = Field(OMITTED)
    prefix_padding_ms: StrictInt = Field(OMITTED)
    silence_duration_ms: StrictInt = Field(OMITTED)
    eagerness: Eagerness = Field(OMITTED)


class FaqEntryIn(FaqEntry):
    model_config = ConfigDict(extra="forbid")


class AgentPatch(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(OMITTED)
    provider: Provider = Field(OMITTED)
    response_engine: ResponseEngineKind = Field(
        OMITTED,
        description="How the built-in provider decides what to say; other providers ignore it.",
    )
    model: str = Field(OMITTED, description="The provider's model, or for Azure the deployment.")
    credential: str | None = Field(
        OMITTED, description="A provider credential's id; null uses the operator's default."
    )
    instructions: str = Field(OMITTED)
    voice: str = Field(OMITTED)
    audio_format: AudioFormat = Field(OMITTED)
    temperature: StrictFloat = Field(OMITTED)
    turn_detection: TurnDetectionIn = Field(OMITTED)
    greeting: str = Field(OMITTED)
    faq: list[FaqEntryIn] = Field(
        OMITTED,
        description=f"Questions callers ask and the answers to give (at most {MAX_FAQ_ENTRIES}; "
        f"a question up to {MAX_FAQ_QUESTION_LENGTH} characters, an answer up to "
        f"{MAX_FAQ_ANSWER_LENGTH}). Replaces the whole list.",
    )
    language: str = Field(OMITTED)
    max_call_duration_seconds: StrictInt = Field(OMITTED)
    idle_timeout_seconds: StrictInt = Field(OMITTED)
    tools: list[str] = Field(OMITTED, description="Ids of the tenant's tools.")
    consent_prompt: str = Field(OMITTED)
    recording_offered: StrictBool = Field(OMITTED)
    consent_required: StrictBool = Field(OMITTED)
    widget_label: str = Field(OMITTED)
    widget_color: str = Field(OMITTED)
    widget_position: WidgetPosition = Field(OMITTED)
    client_may_override: StrictBool = Field(OMITTED)
    client_functions: ClientFunctions = Field(OMITTED)
    tool_calls_shown: ToolCallsShown = Field(OMITTED)
    greet_api_callers: StrictBool = Field(OMITTED)
    strict_client_settings: StrictBool = Field(OMITTED)
    show_configuration_to_browsers: StrictBool = Field(OMITTED)
    transfer_number: str = Field(OMITTED)
    voicemail_action: VoicemailAction = Field(OMITTED)
    voicemail_message: str = Field(OMITTED)


class AgentCreate(AgentPatch):
    name: str


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.public_id,
        "name": agent.name,
        "provider": agent.provider,
        "response_engine": agent.response_engine,
        "model": agent.model,
        "credential": agent.credential.public_id if agent.credential else None,
        "instructions": agent.instructions,
        "voice": agent.voice,
        "audio_format": agent.audio_format,
        "temperature": agent.temperature,
        "turn_detection": {
            "type": agent.turn_detection,
            "threshold": agent.vad_threshold,
            "prefix_padding_ms": agent.vad_prefix_padding_ms,
            "silence_duration_ms": agent.vad_silence_duration_ms,
            "eagerness": agent.semantic_eagerness,
        },
        "greeting": agent.greeting,
        "faq": agent.faq,
        "language": agent.language,
        "max_call_duration_seconds": agent.max_call_duration_seconds,
        "idle_timeout_seconds": agent.idle_timeout_seconds,
        "tools": [tool.public_id for tool in sorted(agent.tools.all(), key=lambda tool: tool.name)],
        "consent_prompt": agent.consent_prompt,
        "recording_offered": agent.recording_offered,
        "consent_required": agent.consent_required,
        "widget_label": agent.widget_label,
        "widget_color": agent.widget_color,
        "widget_position": agent.widget_position,
        "client_may_override": agent.client_may_override,
        "client_functions": agent.client_functions,
        "tool_calls_shown": agent.tool_calls_shown,
        "greet_api_callers": agent.greet_api_callers,
        "strict_client_settings": agent.strict_client_settings,
        "show_configuration_to_browsers": agent.show_configuration_to_browsers,
        "transfer_number": agent.transfer_number,
        "voicemail_action": agent.voicemail_action,
        "voicemail_message": agent.voicemail_message,
        "current_version": agent.current_version.number if agent.current_version else None,
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
    }


def version_json(version: AgentVersion, with_config: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"number": version.number, "created_at": version.created_at}
    if with_config:
        body["config"] = version.config
    return body


def apply_changes(agent: Agent, changes: AgentPatch, tenant: Tenant) -> list[ToolDefinition] | None:
    """Copy the sent fields onto the agent and validate it (InvalidRequest).

    Returns the agent's new tools, or None when the client did not send them.
    """
    sent = changes.model_dump(exclude_unset=True)
    errors: dict[str, list[str]] = {}
    for name in PLAIN_FIELDS:
        if name in sent:
            setattr(agent, name, sent[name])
    for api_name, model_name in TURN_DETECTION_FIELDS.items():
        if api_name in (sent.get("turn_detection") or {}):
            setattr(agent, model_name, sent["turn_detection"][api_name])
    if "credential" in sent:
        credential_id = sent["credential"]
        agent.credential = None
        if credential_id is not None:
            credential = (
                for_tenant(ProviderCredential, tenant).filter(public_id=credential_id).first()
            )
            if credential is None:
                errors["credential"] = [f"Unknown credential: {credential_id}."]
            agent.credential = credential
    tools = None
    if "tools" in sent:
        tool_ids = list(dict.fromkeys(sent["tools"]))
        tools = list(for_tenant(ToolDefinition, tenant).filter(public_id__in=tool_ids))
        unknown = sorted(set(tool_ids) - {tool.public_id for tool in tools})
        if unknown:
            errors["tools"] = ["Unknown tool: " + ", ".join(unknown) + "."]
    full_clean_or_raise(agent, FIELD_NAMES, errors)
    return tools


def _agents(tenant: Tenant) -> Any:
    return (
        for_tenant(Agent, tenant)
        .select_related("credential", "current_version")
        .prefetch_related("tools")
    )


@router.get("", response={200: AgentList, **error_responses(400)}, summary="List agents, by name")
def list_agents(request: HttpRequest, pagination: Query[Pagination]) -> dict[str, Any]:
    agents, count = page(_agents(request_tenant(request)).order_by("name", "pk"), pagination)
    return {
        "items": [agent_json(agent) for agent in agents],
        "count": count,
        "limit": pagination.limit,
        "offset": pagination.offset,
    }


@router.post(
    "", response={201: AgentOut, **error_responses(400, 404)}, summary="Create an agent (version 1)"
)
def create_agent(request: HttpRequest, body: AgentCreate) -> Status[dict[str, Any]]:
    tenant = request_tenant(request)
    agent = Agent(tenant=tenant)
    tools = apply_changes(agent, body, tenant)
    save_agent(agent, tools)
    return Status(201, agent_json(agent))


@router.get("/{agent_id}", response={200: AgentOut, **error_responses(404)}, summary="Get an agent")
def get_agent(request: HttpRequest, agent_id: str) -> dict[str, Any]:
    tenant = request_tenant(request)
    return agent_json(get_for_tenant_or_404(_agents(tenant), tenant, public_id=agent_id))


@router.patch(
    "/{agent_id}",
    response={200: AgentOut, **error_responses(400, 404)},
    summary="Change an agent (a new version when its configuration changes)",
)
def update_agent(request: HttpRequest, agent_id: str, body: AgentPatch) -> dict[str, Any]:
    tenant = request_tenant(request)
    agent = get_for_tenant_or_404(Agent, tenant, public_id=agent_id)
    tools = apply_changes(agent, body, tenant)
    save_agent(agent, tools)
    return agent_json(agent)


@router.delete(
    "/{agent_id}",
    response={204: None, **error_responses(404)},
    summary="Delete an agent (past calls keep their records)",
)
def delete_agent(request: HttpRequest, agent_id: str) -> Status[None]:
    agent = get_for_tenant_or_404(Agent, request_tenant(request), public_id=agent_id)
    agent.delete()
    return Status(204, None)


@router.post(
    "/{agent_id}/duplicate",
    response={201: AgentOut, **error_responses(404)},
    summary="Copy an agent under a new name (its own version 1)",
)
def copy_agent(request: HttpRequest, agent_id: str) -> Status[dict[str, Any]]:
    agent = get_for_tenant_or_404(Agent, request_tenant(request), public_id=agent_id)
    return Status(201, agent_json(duplicate_agent(agent)))


@router.get(
    "/{agent_id}/versions",
    response={200: VersionList, **error_responses(404)},
    summary="List an agent's versions, newest first",
)
def list_versions(
    request: HttpRequest, agent_id: str, pagination: Query[Pagination]
) -> dict[str, Any]:
    agent = get_for_tenant_or_404(Agent, request_tenant(request), public_id=agent_id)
    versions, count = page(agent.versions.order_by("-number"), pagination)
    return {
        "items": [version_json(version) for version in versions],
        "count": count,
        "limit": pagination.limit,
        "offset": pagination.offset,
    }


@router.get(
    "/{agent_id}/versions/{number}",
    response={200: VersionOut, **error_responses(404)},
    summary="Get one version of an agent, with its configuration",
)
def get_version(request: HttpRequest, agent_id: str, number: int) -> dict[str, Any]:
    agent = get_for_tenant_or_404(Agent, request_tenant(request), public_id=agent_id)
    version = agent.versions.filter(number=number).first()
    if version is None:
        raise Http404(f"Agent {agent.public_id} has no version {number}.")
    return version_json(version, with_config=True)
