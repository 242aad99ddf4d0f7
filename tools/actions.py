"""State changes of tool definitions, shared by the dashboard and the REST API.

A tool's definition is part of every agent version that uses it, so each change here
sends ``tool_changed`` with the affected agents' ids; the agents layer listens and
records their new versions (tools must not import agents). An MCP tool's server is
asked for its tools on every save, so the versions carry what the server offers now.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from tenancy.scoping import for_tenant
from tools.mcp_servers import McpListing, list_tools_of
from tools.models import ToolDefinition, ToolKind, new_signing_secret, new_tool_id
from tools.schema import validate_function_name

# Sent with agent_ids (list of Agent pks) and user (who made the change, or None).
tool_changed = Signal()

COPY_SUFFIX = "_copy"
NAME_MAX_LENGTH = 64


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
