"""A tool as an agent version knows it, typed: what running it needs (no secrets).

An agent version stores each tool's snapshot as JSON (``ToolDefinition.snapshot``), and
snapshots saved before a setting existed lack it. ``ToolSpec.from_snapshot`` reads one
with every default in one place; running a tool reads typed attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RemoteTool:
    """One tool an MCP server listed (its name, description and input schema)."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class ToolSpec:
    name: str
    id: str = ""  # the ToolDefinition's public id ("" for none)
    description: str = ""
    parameters: dict[str, Any] | None = None  # the function's JSON Schema
    kind: str = ""  # webhook, builtin, mcp, mock
    execution: str = "inline"  # inline or background
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    retry_safe: bool = True
    builtin_name: str = ""
    webhook_url: str = ""
    http_method: str = "POST"
    mcp_server_url: str = ""
    mcp_tool_names: tuple[str, ...] = ()  # the remote tools chosen (by name)
    mcp_tools: tuple[RemoteTool, ...] = ()  # those of them the server listed
    example_phrases: tuple[str, ...] = ()
    mock_response: str = ""

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> ToolSpec:
        timeout = snapshot.get("timeout_seconds")
        parameters = snapshot.get("parameters")
        return cls(
            name=str(snapshot.get("name") or ""),
            id=str(snapshot.get("id") or ""),
            description=str(snapshot.get("description") or ""),
            parameters=parameters if isinstance(parameters, dict) else None,
            kind=str(snapshot.get("kind") or ""),
            execution=str(snapshot.get("execution") or "inline"),
            timeout_seconds=float(timeout)
            if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0
            else DEFAULT_TIMEOUT_SECONDS,
            retry_safe=bool(snapshot.get("retry_safe", True)),
            builtin_name=str(snapshot.get("builtin_name") or ""),
            webhook_url=str(snapshot.get("webhook_url") or ""),
            http_method=str(snapshot.get("http_method") or "POST"),
            mcp_server_url=str(snapshot.get("mcp_server_url") or ""),
            mcp_tool_names=tuple(str(name) for name in snapshot.get("mcp_tool_names") or ()),
            mcp_tools=tuple(
                RemoteTool(
                    name=str(remote["name"]),
                    description=str(remote.get("description") or ""),
                    input_schema=remote.get("input_schema")
                    if isinstance(remote.get("input_schema"), dict)
                    else None,
                )
                for remote in snapshot.get("mcp_tools") or ()
                if isinstance(remote, Mapping) and remote.get("name")
            ),
            example_phrases=tuple(str(phrase) for phrase in snapshot.get("example_phrases") or ()),
            mock_response=str(snapshot.get("mock_response") or ""),
        )
