"""REST API v1 for a tenant's tool definitions (mounted at /v1/tools).

Secrets are write-only: webhook headers and the MCP Authorization header are accepted
but never returned, and the webhook signing secret is shown once, when a tool is created
or duplicated.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import ConfigDict, StrictBool, StrictInt, StringConstraints

from foundation.api import (
    OMITTED,
    Pagination,
    error_responses,
    full_clean_or_raise,
    page,
    request_tenant,
)
from tenancy.scoping import for_tenant, get_for_tenant_or_404
from tools.actions import delete_tool, duplicate_tool, save_tool
from tools.models import Execution, HttpMethod, ToolDefinition, ToolKind

router = Router(tags=["tools"])

# Model field -> API field, for validation messages.
FIELD_NAMES = {
    "webhook_url": "webhook.url",
    "http_method": "webhook.method",
    "webhook_headers": "webhook.headers",
    "mcp_server_url": "mcp.server_url",
    "mcp_tool_names": "mcp.tool_names",
    "mcp_auth_header": "mcp.auth_header",
}


class WebhookOut(Schema):
    url: str
    method: HttpMethod
    has_headers: bool


class McpOut(Schema):
    server_url: str
    tool_names: list[str]
    has_auth_header: bool


class ToolOut(Schema):
    id: str
    name: str
    description: str
    parameters: dict[str, Any]
    kind: ToolKind
    execution: Execution
    timeout_seconds: int
    retry_safe: bool = Field(
        description="Background tools: run again (same Idempotency-Key) if the worker running "
        "it dies; false reports such a run as failed instead."
    )
    example_phrases: list[str] = Field(description="What callers say to ask for this tool.")
    builtin_name: str
    mock_response: str = Field(description="A mock tool's reply, with {argument} placeholders.")
    webhook: WebhookOut
    mcp: McpOut
    created_at: datetime
    updated_at: datetime


class ToolCreated(ToolOut):
    signing_secret: str = Field(
        description="Signs the webhook requests Koe sends; shown only in this response."
    )


class ToolList(Schema):
    items: list[ToolOut]
    count: int
    limit: int
    offset: int


# Bounds of what is sent on as HTTP headers: servers refuse headers past about 8 KiB.
HeaderName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
HeaderValue = Annotated[str, StringConstraints(max_length=8192)]
McpToolName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


# Write schemas: every field may be left out (the model's default, or unchanged on
# PATCH); an explicit null is refused by the field's type, a number sent as a string too.
class WebhookIn(Schema):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(OMITTED, description="http:// or https:// URL Koe calls.")
    method: HttpMethod = Field(OMITTED)
    headers: dict[HeaderName, HeaderValue] = Field(
        OMITTED,
        max_length=50,
        description="Extra request headers; stored encrypted, never returned.",
    )


class McpIn(Schema):
    model_config = ConfigDict(extra="forbid")

    server_url: str = Field(OMITTED)
    tool_names: list[McpToolName] = Field(
        OMITTED, max_length=200, description="The server's tools to expose (empty: all)."
    )
    auth_header: HeaderValue = Field(
        OMITTED, description="Sent as the Authorization header; stored encrypted, never returned."
    )


class ToolPatch(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(OMITTED, description="The function name the model calls, e.g. book_table.")
    description: str = Field(OMITTED)
    parameters: dict[str, Any] = Field(OMITTED, description="JSON Schema of an object.")
    kind: ToolKind = Field(OMITTED)
    execution: Execution = Field(OMITTED)
    timeout_seconds: StrictInt = Field(OMITTED)
    retry_safe: StrictBool = Field(OMITTED)
    example_phrases: list[str] = Field(
        OMITTED,
        description="What callers say to ask for this tool (at most 20, each up to 200 "
        "characters); the built-in provider's scripted engine recognises requests by them.",
    )
    builtin_name: str = Field(OMITTED)
    mock_response: str = Field(
        OMITTED,
        description="Kind mock: the reply (up to 2000 characters); {name} placeholders are "
        "filled from the call's arguments and must name properties of the parameters.",
    )
    webhook: WebhookIn = Field(OMITTED)
    mcp: McpIn = Field(OMITTED)


class ToolCreate(ToolPatch):
    name: str = Field(description="The function name the model calls, e.g. book_table.")


def tool_json(tool: ToolDefinition) -> dict[str, Any]:
    return {
        "id": tool.public_id,
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
        "kind": tool.kind,
        "execution": tool.execution,
        "timeout_seconds": tool.timeout_seconds,
        "retry_safe": tool.retry_safe,
        "example_phrases": tool.example_phrases if isinstance(tool.example_phrases, list) else [],
        "builtin_name": tool.builtin_name,
        "mock_response": tool.mock_response,
        "webhook": {
            "url": tool.webhook_url,
            "method": tool.http_method,
            "has_headers": bool(tool.webhook_headers),
        },
        "mcp": {
            "server_url": tool.mcp_server_url,
            "tool_names": tool.mcp_tool_names if isinstance(tool.mcp_tool_names, list) else [],
            "has_auth_header": bool(tool.mcp_auth_header),
        },
        "created_at": tool.created_at,
        "updated_at": tool.updated_at,
    }


def apply_changes(tool: ToolDefinition, changes: ToolPatch) -> None:
    """Copy the fields the client sent onto the tool, then validate it (InvalidRequest)."""
    sent = changes.model_dump(exclude_unset=True)
    for name in (
        "name",
        "description",
        "parameters",
        "kind",
        "execution",
        "timeout_seconds",
        "retry_safe",
        "example_phrases",
        "builtin_name",
        "mock_response",
    ):
        if name in sent:
            setattr(tool, name, sent[name])
    webhook = sent.get("webhook") or {}
    if "url" in webhook:
        tool.webhook_url = webhook["url"]
    if "method" in webhook:
        tool.http_method = webhook["method"]
    if "headers" in webhook:
        tool.webhook_headers = json.dumps(webhook["headers"]) if webhook["headers"] else ""
    mcp = sent.get("mcp") or {}
    if "server_url" in mcp:
        tool.mcp_server_url = mcp["server_url"]
    if "tool_names" in mcp:
        tool.mcp_tool_names = mcp["tool_names"]
    if "auth_header" in mcp:
        tool.mcp_auth_header = mcp["auth_header"]
    full_clean_or_raise(tool, FIELD_NAMES)


@router.get("", response={200: ToolList, **error_responses(400)}, summary="List tools, by name")
def list_tools(request: HttpRequest, pagination: Query[Pagination]) -> dict[str, Any]:
    queryset = for_tenant(ToolDefinition, request_tenant(request)).order_by("name")
    tools, count = page(queryset, pagination)
    return {
        "items": [tool_json(tool) for tool in tools],
        "count": count,
        "limit": pagination.limit,
        "offset": pagination.offset,
    }


@router.post(
    "",
    response={201: ToolCreated, **error_responses(400, 404)},
    summary="Create a tool (the response carries its signing secret, once)",
)
def create_tool(request: HttpRequest, body: ToolCreate) -> Status[dict[str, Any]]:
    tool = ToolDefinition(tenant=request_tenant(request))
    apply_changes(tool, body)
    save_tool(tool)
    return Status(201, {**tool_json(tool), "signing_secret": tool.signing_secret})


@router.get("/{tool_id}", response={200: ToolOut, **error_responses(404)}, summary="Get a tool")
def get_tool(request: HttpRequest, tool_id: str) -> dict[str, Any]:
    tool = get_for_tenant_or_404(ToolDefinition, request_tenant(request), public_id=tool_id)
    return tool_json(tool)


@router.patch(
    "/{tool_id}",
    response={200: ToolOut, **error_responses(400, 404)},
    summary="Change a tool (agents using it get a new version)",
)
def update_tool(request: HttpRequest, tool_id: str, body: ToolPatch) -> dict[str, Any]:
    tool = get_for_tenant_or_404(ToolDefinition, request_tenant(request), public_id=tool_id)
    apply_changes(tool, body)
    save_tool(tool)
    return tool_json(tool)


@router.delete(
    "/{tool_id}",
    response={204: None, **error_responses(404)},
    summary="Delete a tool (agents using it lose it, in a new version)",
)
def remove_tool(request: HttpRequest, tool_id: str) -> Status[None]:
    tool = get_for_tenant_or_404(ToolDefinition, request_tenant(request), public_id=tool_id)
    delete_tool(tool)
    return Status(204, None)


@router.post(
    "/{tool_id}/duplicate",
    response={201: ToolCreated, **error_responses(404)},
    summary="Copy a tool under a new name, with its own signing secret",
)
def copy_tool(request: HttpRequest, tool_id: str) -> Status[dict[str, Any]]:
    tool = get_for_tenant_or_404(ToolDefinition, request_tenant(request), public_id=tool_id)
    copy = duplicate_tool(tool)
    return Status(201, {**tool_json(copy), "signing_secret": copy.signing_secret})
