"""The functions a model sees for an agent's tools, and which tool answers each.

Most tools are one function each, named as the tool. An MCP tool stands for a remote
server: each of its selected remote tools becomes a function of its own, named
``<tool name>__<remote name>``, described and typed as the server lists it (the list is
taken when the agent is saved, into the version's snapshot under ``mcp_tools``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tools.spec import ToolSpec

MAX_FUNCTION_NAME = 64
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class ModelFunction:
    name: str
    description: str
    parameters: dict[str, Any]
    tool: ToolSpec  # the tool as the agent version knows it
    remote_name: str = ""  # for an MCP tool: the server's name of the tool

    def as_session_tool(self) -> dict[str, Any]:
        """The Realtime session's declaration of this function."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


def mcp_function_name(tool_name: str, remote_name: str) -> str:
    return f"{tool_name}__{_NOT_ALLOWED.sub('_', remote_name)}"[:MAX_FUNCTION_NAME]


def model_functions(tools: Iterable[ToolSpec]) -> list[ModelFunction]:
    functions: list[ModelFunction] = []
    for tool in tools:
        if tool.kind != "mcp":
            functions.append(
                ModelFunction(
                    name=tool.name,
                    description=tool.description,
                    parameters=tool.parameters or {"type": "object", "properties": {}},
                    tool=tool,
                )
            )
            continue
        for remote in tool.mcp_tools:
            functions.append(
                ModelFunction(
                    name=mcp_function_name(tool.name, remote.name),
                    description=remote.description or tool.description,
                    parameters=remote.input_schema or {"type": "object", "properties": {}},
                    tool=tool,
                    remote_name=remote.name,
                )
            )
    return functions


def functions_by_name(tools: Iterable[ToolSpec]) -> dict[str, ModelFunction]:
    return {function.name: function for function in model_functions(tools)}
