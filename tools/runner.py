"""The seam between a live call and tool execution.

The realtime broker hands each server-side function call to the runner named by
``settings.KOE_TOOL_RUNNER`` (an async callable taking a ToolCallContext and returning
the output string given back to the model). Mock tools are answered here, from their
template. Executing webhook, built-in and MCP tools is the tools layer's next step;
until it lands, this default runner answers those calls with a structured error the
model can speak about, instead of leaving the caller in silence.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from tools.mock import render_template
from tools.models import ToolKind

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolCallContext:
    tenant_id: str
    agent_id: str
    call_id: str
    tool: dict[str, Any]  # the tool's snapshot in the agent version
    function_call_id: str
    arguments: str  # JSON text, as the model produced it


async def run_tool_call(context: ToolCallContext) -> str:
    if context.tool.get("kind") == ToolKind.MOCK:
        return run_mock_tool(context.tool, context.arguments)
    return error_output(
        "tool_unavailable",
        f"The tool {context.tool.get('name')} cannot be run on this deployment yet. "
        "Apologise and offer another way to help.",
    )


def run_mock_tool(tool: dict[str, Any], arguments: str) -> str:
    """The mock reply with the call's arguments filled in, as {"ok": true, "message"}."""
    try:
        # An empty string is what some models send for a function without arguments.
        parsed = json.loads(arguments) if (arguments or "").strip() else {}
    except (json.JSONDecodeError, RecursionError) as error:
        logger.info("mock tool %s got arguments that are not JSON: %s", tool.get("name"), error)
        parsed = None
    if not isinstance(parsed, dict):
        return error_output(
            "invalid_arguments",
            f"The arguments of {tool.get('name')} must be a JSON object; "
            "call it again with valid arguments.",
        )
    message = render_template(str(tool.get("mock_response") or ""), parsed)
    return json.dumps({"ok": True, "message": message}, ensure_ascii=False)


def error_output(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False)
