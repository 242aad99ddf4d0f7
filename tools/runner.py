"""The seam between a live call and tool execution.

The realtime broker hands each server-side function call to the runner named by
``settings.KOE_TOOL_RUNNER`` (an async callable taking a ToolCallContext and returning
the output string given back to the model). Executing webhook, built-in and MCP tools is
the tools layer's job; until it lands, this default runner answers every call with a
structured error the model can speak about, instead of leaving the caller in silence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ToolCallContext:
    tenant_id: str
    agent_id: str
    call_id: str
    tool: dict[str, Any]  # the tool's snapshot in the agent version
    function_call_id: str
    arguments: str  # JSON text, as the model produced it


async def run_tool_call(context: ToolCallContext) -> str:
    return json.dumps(
        {
            "error": {
                "code": "tool_unavailable",
                "message": f"The tool {context.tool.get('name')} cannot be run on this "
                "deployment yet. Apologise and offer another way to help.",
            }
        }
    )
