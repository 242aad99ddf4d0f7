"""A live call's server-run tool call: its arguments checked, its invocation recorded, and
the tool run now (inline, bounded by its timeout) or queued for a Celery worker
(background), whose result reaches the call later through the call's channel-layer group.

The realtime broker hands each server-side function call to ``run_tool_call``.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async

from tools.execution import parse_arguments
from tools.models import Execution
from tools.outcomes import ToolOutcome
from tools.runner import PENDING_MESSAGE, ToolCallContext, prepare, run_prepared
from tools.tasks import queue_invocation


async def run_tool_call(context: ToolCallContext) -> ToolOutcome:
    name = context.function_name or context.tool.name
    parameters = context.parameters
    if parameters is None:
        parameters = context.tool.parameters
    arguments = parse_arguments(context.arguments, name, parameters)
    prepared = await sync_to_async(prepare)(context, arguments)
    if prepared.already_done is not None:
        return prepared.already_done
    if isinstance(arguments, ToolOutcome):
        return arguments  # recorded as failed by prepare()
    if context.tool.execution == Execution.BACKGROUND:
        await queue_invocation(prepared.invocation_id, arguments)
        return ToolOutcome.success({"status": "running", "message": PENDING_MESSAGE}, pending=True)
    return await run_prepared(prepared, context.remote_name)
