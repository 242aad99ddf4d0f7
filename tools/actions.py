"""State changes of tool definitions, shared by the dashboard and the REST API.

A tool's definition is part of every agent version that uses it, so each change here
sends ``tool_changed`` with the affected agents' ids; the agents layer listens and
records their new versions (tools must not import agents). An MCP tool's server is
asked for its tools on every save, so the versions carry what the server offers now.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from tenancy.models import Tenant
from tenancy.scoping import for_tenant
from tools.mcp_servers import McpListing, list_tools_of
from tools.models import (
    BuiltinTool,
    Execution,
    ToolDefinition,
    ToolKind,
    new_signing_secret,
    new_tool_id,
)
from tools.schema import EMPTY_PARAMETERS, validate_function_name

# Sent with agent_ids (list of Agent pks) and user (who made the change, or None).
tool_changed = Signal()

COPY_SUFFIX = "_copy"
NAME_MAX_LENGTH = 64

# What a tenant's built-in tools say to the model when Koe creates them; editors may change
# the descriptions and example phrases like any tool's.
BUILTIN_DEFINITIONS: dict[str, dict[str, Any]] = {
    BuiltinTool.END_CALL: {
        "description": "Ends the call. Use it once the caller has nothing more to ask: say a "
        "short goodbye first; the call ends when you finish speaking.",
        "parameters": EMPTY_PARAMETERS,
    },
    BuiltinTool.TRANSFER_TO_HUMAN: {
        "description": "Asks a member of staff to take over and follow up with the caller. Use "
        "it when the caller asks for a person or needs help you cannot give.",
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "description": "Why a person should follow up, in a sentence.",
                }
            },
            "required": ["reason"],
        },
    },
    BuiltinTool.CURRENT_TIME: {
        "description": "Tells the current date and time in the business's time zone.",
        "parameters": EMPTY_PARAMETERS,
    },
}


def save_tool(
    tool: ToolDefinition, user: Any = None, *, mcp_listing: McpListing | None = None
) -> ToolDefinition:
    """Save a validated tool and tell the agents that use it.

    An MCP tool records its server's tools: ``mcp_listing`` when the caller already asked
    (the dashboard form does, to check the tool names), else they are listed here.
    """
    if tool.kind == ToolKind.MCP:
        record_mcp_listing(tool, mcp_listing)
    with transaction.atomic():
        tool.save()
        agent_ids = list(tool.agents.values_list("pk", flat=True))
        tool_changed.send(sender=ToolDefinition, agent_ids=agent_ids, user=user)
    return tool


def delete_tool(tool: ToolDefinition, user: Any = None) -> None:
    """Delete the tool; the agents that used it lose it, which is a new version of each."""
    with transaction.atomic():
        agent_ids = list(tool.agents.values_list("pk", flat=True))
        tool.delete()
        tool_changed.send(sender=ToolDefinition, agent_ids=agent_ids, user=user)


def duplicate_tool(tool: ToolDefinition) -> ToolDefinition:
    """A copy named <name>_copy (numbered if taken), with its own id and signing secret."""
    copy = ToolDefinition.objects.get(pk=tool.pk)
    copy.pk = None
    copy.public_id = new_tool_id()
    copy.signing_secret = new_signing_secret()
    copy.name = _copy_name(tool)
    copy.created_at = timezone.now()
    if copy.kind == ToolKind.MCP:
        record_mcp_listing(copy)
    copy.save()
    return copy


def record_mcp_listing(tool: ToolDefinition, listing: McpListing | None = None) -> McpListing:
    """Put the server's tools on the (unsaved) tool, or keep its previous list on failure.

    A server that is down must not cost the tenant an edit: the returned listing says
    what happened, for the caller to warn about.
    """
    if listing is None:
        listing = list_tools_of(tool)
    if listing.tools is not None:
        tool.mcp_tools_listed = [remote.as_snapshot() for remote in listing.tools]
        tool.mcp_tools_listed_at = timezone.now()
    return listing


def rotate_signing_secret(tool: ToolDefinition) -> str:
    """Replace the webhook signing secret; the new one is returned to be shown once."""
    secret = new_signing_secret()
    tool.signing_secret = secret
    tool.save(update_fields=["signing_secret", "updated_at"])
    return secret


def ensure_builtin_tools(tenant: Tenant) -> list[ToolDefinition]:
    """The tenant's tool for each built-in, in BuiltinTool's order, created where missing.

    Built-ins are offered to agents like any tool, so every tenant has one of each: a
    tool of kind builtin with that builtin_name (whatever it is called). A deleted one
    comes back the next time this runs. Idempotent, and safe when two requests race. A
    new tool is in no agent's version yet, so nothing is re-versioned (no tool_changed).
    """
    found = _builtin_tools(tenant)
    return [found.get(builtin) or _create_builtin(tenant, builtin) for builtin in BuiltinTool]


def _builtin_tools(tenant: Tenant) -> dict[str, ToolDefinition]:
    tools = for_tenant(ToolDefinition, tenant).filter(kind=ToolKind.BUILTIN)
    found: dict[str, ToolDefinition] = {}
    for tool in tools.order_by("created_at", "pk"):
        found.setdefault(tool.builtin_name, tool)
    return found


def _create_builtin(tenant: Tenant, builtin: BuiltinTool) -> ToolDefinition:
    definition = BUILTIN_DEFINITIONS[builtin]
    for _ in range(3):
        tool = ToolDefinition(
            tenant=tenant,
            name=_free_name(tenant, builtin.value),
            kind=ToolKind.BUILTIN,
            builtin_name=builtin,
            execution=Execution.INLINE,
            description=definition["description"],
            parameters=copy.deepcopy(definition["parameters"]),
        )
        try:
            with transaction.atomic():
                tool.save()
            return tool
        except IntegrityError:
            # Another request took the name, most likely creating this very built-in.
            existing = _builtin_tools(tenant).get(builtin)
            if existing is not None:
                return existing
    raise RuntimeError(f"Could not create the built-in tool {builtin.value} for {tenant}.")


def _free_name(tenant: Tenant, name: str) -> str:
    """``name``, or ``name_builtin``, ``name_builtin2``… when a tenant's tool has it."""
    taken = set(for_tenant(ToolDefinition, tenant).values_list("name", flat=True))
    candidate, counter = name, 1
    while candidate in taken:
        candidate = f"{name}_builtin" + ("" if counter == 1 else str(counter))
        counter += 1
    return candidate


def _copy_name(tool: ToolDefinition) -> str:
    taken = set(for_tenant(ToolDefinition, tool.tenant).values_list("name", flat=True))
    counter = 1
    while True:
        suffix = COPY_SUFFIX + ("" if counter == 1 else str(counter))
        name = tool.name[: NAME_MAX_LENGTH - len(suffix)] + suffix
        if name not in taken:
            validate_function_name(name)
            return name
        counter += 1
