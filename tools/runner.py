"""Tool invocations: one ToolInvocation row per function call of a live call, and running
one now, bounded by its tool's timeout.

``tools.dispatch.run_tool_call`` decides between running here and queuing for a worker
(``tools.tasks``); both record how a run went through this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from calls.models import CallSession
from foundation.text import storable, storable_json
from tools.execution import ToolSecrets, execute
from tools.invocations import Delivery, InvocationSource, InvocationStatus, ToolInvocation
from tools.models import Execution, ToolDefinition
from tools.outcomes import ToolOutcome, ToolRequest
from tools.spec import ToolSpec

logger = logging.getLogger("koe.tools")

PENDING_MESSAGE = (
    "This is running in the background. Tell the caller briefly that you are working on it; "
    "the result will follow in the conversation."
)


@dataclass(frozen=True)
class ToolCallContext:
    tenant_id: str
    agent_id: str
    call_id: str
    tool: ToolSpec  # the tool as the agent version knows it
    function_call_id: str
    arguments: str  # JSON text, as the model produced it
    function_name: str = ""  # the model's name for it (an MCP tool's functions differ)
    parameters: dict[str, Any] | None = None  # the function's JSON Schema
    remote_name: str = ""  # an MCP tool's name on its server


@dataclass(frozen=True)
class Prepared:
    invocation_id: int
    request: ToolRequest
    secrets: ToolSecrets
    stores_content: bool
    already_done: ToolOutcome | None = None  # the same function call ran before


async def run_prepared(prepared: Prepared, remote_name: str = "") -> ToolOutcome:
    """Run an invocation now, bounded by the tool's timeout, and record how it went."""
    timeout = prepared.request.tool.timeout_seconds
    started = time.perf_counter()
    await sync_to_async(mark_running)(prepared.invocation_id)
    try:
        outcome = await asyncio.wait_for(
            execute(prepared.request, prepared.secrets, remote_name), timeout + 1
        )
    except asyncio.CancelledError:
        # The call ended mid-run: say so on the row (shielded: this task is being
        # cancelled), then let the cancellation go on.
        duration_ms = round((time.perf_counter() - started) * 1000)
        await asyncio.shield(sync_to_async(record_cancelled)(prepared.invocation_id, duration_ms))
        raise
    except TimeoutError:
        outcome = ToolOutcome.failure(
            "timeout", f"{prepared.request.tool.name} took longer than {timeout:g} seconds."
        )
    except Exception as error:  # a failing tool must not fail the call
        logger.exception("tool %s failed", prepared.request.tool.name)
        outcome = ToolOutcome.failure(
            "tool_failed", f"{prepared.request.tool.name} failed ({type(error).__name__})."
        )
    duration_ms = round((time.perf_counter() - started) * 1000)
    await sync_to_async(record_outcome)(prepared.invocation_id, outcome, duration_ms)
    return outcome


def prepare(context: ToolCallContext, arguments: dict[str, Any] | ToolOutcome) -> Prepared:
    """Create the invocation row (or find the finished one) and gather what running needs."""
    call = CallSession.objects.select_related("tenant").get(public_id=context.call_id)
    definition = ToolDefinition.objects.filter(
        tenant=call.tenant, public_id=context.tool.id
    ).first()
    request = ToolRequest(
        tool=context.tool,
        arguments=arguments if isinstance(arguments, dict) else {},
        tenant_id=context.tenant_id,
        agent_id=context.agent_id,
        call_id=context.call_id,
        function_call_id=context.function_call_id,
        end_user=call.end_user_ref,
        time_zone=call.tenant.time_zone,
    )
    stores_content = call.stores_transcript
    failed = arguments if isinstance(arguments, ToolOutcome) else None
    try:
        with transaction.atomic():
            invocation = ToolInvocation.objects.create(
                tenant=call.tenant,
                tool=definition,
                tool_name=context.function_name or context.tool.name,
                call=call,
                function_call_id=context.function_call_id,
                idempotency_key=request.idempotency_key,
                source=InvocationSource.CALL,
                execution=context.tool.execution,
                stores_content=stores_content,
                arguments=storable_json(request.arguments)
                if stores_content and failed is None
                else None,
                delivery=Delivery.INLINE
                if context.tool.execution != Execution.BACKGROUND
                else Delivery.PENDING,
            )
    except IntegrityError:
        # The model repeated a function call id: answer with what the first run produced.
        earlier = ToolInvocation.objects.get(idempotency_key=request.idempotency_key)
        return Prepared(earlier.pk, request, ToolSecrets(), stores_content, _earlier(earlier))
    if failed is not None:
        record_outcome(invocation.pk, failed, 0)
    return Prepared(invocation.pk, request, secrets_of(definition), stores_content)


def secrets_of(definition: ToolDefinition | None) -> ToolSecrets:
    if definition is None:
        return ToolSecrets()
    return ToolSecrets(
        signing_secret=definition.signing_secret,
        headers=definition.headers,
        mcp_auth_header=definition.mcp_auth_header,
    )


def mark_running(invocation_id: int) -> None:
    ToolInvocation.objects.filter(pk=invocation_id).update(
        status=InvocationStatus.RUNNING, attempts=F("attempts") + 1
    )


def record_outcome(invocation_id: int, outcome: ToolOutcome, duration_ms: int) -> None:
    invocation = ToolInvocation.objects.get(pk=invocation_id)
    invocation.status = InvocationStatus.SUCCEEDED if outcome.ok else InvocationStatus.FAILED
    invocation.error_code = outcome.error_code
    invocation.result = storable(outcome.output) if invocation.stores_content else ""
    invocation.duration_ms = duration_ms
    invocation.finished_at = timezone.now()
    invocation.save(update_fields=["status", "error_code", "result", "duration_ms", "finished_at"])


def record_cancelled(invocation_id: int, duration_ms: int | None = None) -> None:
    ToolInvocation.objects.filter(
        pk=invocation_id, status__in=[InvocationStatus.PENDING, InvocationStatus.RUNNING]
    ).update(
        status=InvocationStatus.CANCELLED,
        error_code="call_ended",
        duration_ms=duration_ms,
        finished_at=timezone.now(),
    )


def cancel_unfinished(call_public_id: str) -> int:
    """When a call ends: its inline runs that never finished are cancelled, not left
    pending. (Background runs go on in their worker; their result is stored, undelivered.)"""
    return ToolInvocation.objects.filter(
        call__public_id=call_public_id,
        execution=Execution.INLINE,
        status__in=[InvocationStatus.PENDING, InvocationStatus.RUNNING],
    ).update(status=InvocationStatus.CANCELLED, error_code="call_ended", finished_at=timezone.now())


def cancel_runs_of_ended_call(sender: Any, call: CallSession, **kwargs: Any) -> None:
    """calls.signals.call_ended: however the call ended (its server lost included)."""
    cancel_unfinished(call.public_id)


def _earlier(invocation: ToolInvocation) -> ToolOutcome:
    if invocation.status in (InvocationStatus.PENDING, InvocationStatus.RUNNING):
        return ToolOutcome.success({"status": "running", "message": PENDING_MESSAGE}, pending=True)
    if invocation.stores_content:
        return ToolOutcome(output=invocation.result, ok=invocation.status == "succeeded")
    return ToolOutcome.failure(
        "duplicate_call", "This function call was already answered; do not repeat it."
    )
