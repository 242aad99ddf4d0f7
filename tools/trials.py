"""Test runs from the dashboard: a tool run now with sample arguments, as a call would run it.

The arguments are checked against the function's schema and the tool runs through the
same ``execute`` as a live call's, bounded by the tool's timeout. A background tool runs
here too, inline: whoever tests it waits for the result. Each run is a ToolInvocation of
source "test" with no call; its arguments and result are stored, being the tenant's own
test data. Built-ins that act on a call (end_call, transfer_to_human) only act when the
request names one, which a test run never does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

from foundation.text import storable_json
from tools.execution import ToolSecrets, execute, parse_arguments
from tools.functions import mcp_function_name
from tools.invocations import Delivery, InvocationSource, InvocationStatus, ToolInvocation
from tools.models import Execution, ToolDefinition, ToolKind
from tools.outcomes import ToolOutcome, ToolRequest
from tools.runner import record_outcome, secrets_of
from tools.spec import ToolSpec

logger = logging.getLogger("koe.tools")


class UnknownRemoteTool(ValueError):
    """An MCP tool was asked to run a remote tool it does not expose."""


def remote_tools(tool: ToolDefinition) -> list[dict[str, Any]]:
    """An MCP tool's selected remote tools, as its last listing described them."""
    if tool.kind != ToolKind.MCP:
        return []
    return list(tool.snapshot().get("mcp_tools") or [])


def function_of(tool: ToolDefinition, remote_name: str = "") -> tuple[str, dict[str, Any] | None]:
    """The model's name for the function and its parameters schema.

    A tool is one function, except an MCP tool: one per remote tool, named and typed as
    its server lists them (see tools.functions).
    """
    if tool.kind != ToolKind.MCP:
        return tool.name, tool.parameters
    for remote in remote_tools(tool):
        if remote.get("name") == remote_name:
            return mcp_function_name(tool.name, remote_name), remote.get("input_schema")
    raise UnknownRemoteTool(f"{tool.name} does not expose a remote tool named {remote_name!r}.")


def run_test(
    tool: ToolDefinition, arguments_json: str, *, remote_name: str = ""
) -> tuple[ToolOutcome, ToolInvocation]:
    """Run ``tool`` now with the arguments (JSON text) and record the invocation.

    Raises UnknownRemoteTool for an MCP tool's remote tool it does not expose; every
    other failure (invalid arguments, a timeout, a refused address) is the outcome.
    """
    name, parameters = function_of(tool, remote_name)
    spec = ToolSpec.from_snapshot(tool.snapshot())
    function_call_id = f"test_{secrets.token_hex(12)}"
    arguments = parse_arguments(arguments_json, name, parameters)
    request = ToolRequest(
        tool=spec,
        arguments=arguments if isinstance(arguments, dict) else {},
        tenant_id=tool.tenant.public_id,
        agent_id="",
        call_id="",
        function_call_id=function_call_id,
        time_zone=tool.tenant.time_zone,
    )
    rejected = arguments if isinstance(arguments, ToolOutcome) else None
    invocation = ToolInvocation.objects.create(
        tenant=tool.tenant,
        tool=tool,
        tool_name=name,
        call=None,
        function_call_id=function_call_id,
        idempotency_key=f"test:{function_call_id}",
        source=InvocationSource.TEST,
        execution=tool.execution or Execution.INLINE,
        stores_content=True,
        arguments=storable_json(_parsed_or_none(arguments_json)),
        # As a live call's: arguments refused before running count no attempt.
        status=InvocationStatus.PENDING if rejected else InvocationStatus.RUNNING,
        attempts=0 if rejected else 1,
        delivery=Delivery.INLINE,
    )
    if rejected is not None:
        outcome, duration_ms = rejected, 0
    else:
        started = time.perf_counter()
        outcome = asyncio.run(_bounded(request, secrets_of(tool), remote_name))
        duration_ms = round((time.perf_counter() - started) * 1000)
    record_outcome(invocation.pk, outcome, duration_ms)
    invocation.refresh_from_db()
    return outcome, invocation


async def _bounded(request: ToolRequest, secrets: ToolSecrets, remote_name: str) -> ToolOutcome:
    """``execute`` within the tool's timeout (plus a second, as a live call allows)."""
    name = request.tool.name
    timeout = request.tool.timeout_seconds
    try:
        return await asyncio.wait_for(execute(request, secrets, remote_name), timeout + 1)
    except TimeoutError:
        return ToolOutcome.failure("timeout", f"{name} took longer than {timeout:g} seconds.")
    except Exception as error:  # shown on the test panel, like a live call's failure
        logger.exception("test run of tool %s failed", name)
        return ToolOutcome.failure("tool_failed", f"{name} failed ({type(error).__name__}).")


def _parsed_or_none(text: str) -> Any:
    """What was sent, when it is JSON at all (the arguments may still be refused)."""
    if not (text or "").strip():
        return {}
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
