"""Background tools: a Celery task runs the invocation and delivers its result to the call.

Acks late: a worker that dies mid-task leaves the message to be run again. Every run of
one function call shares its invocation row (the idempotency key is call id + function
call id, also sent to webhooks as Idempotency-Key), so a retry finishes what a dead
worker started and never runs a finished call again or delivers its result twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer
from django.db import transaction

from calls.models import CallStatus
from tools.execution import execute
from tools.invocations import Delivery, InvocationStatus, ToolInvocation
from tools.outcomes import ToolOutcome, ToolRequest
from tools.runner import mark_running, record_outcome, secrets_of

logger = logging.getLogger("koe.tools")

MAX_ATTEMPTS = 4
# Failures worth another try: the tenant's server was slow, down or overloaded.
RETRYABLE = frozenset({"timeout", "unreachable"})


def retryable(outcome: ToolOutcome) -> bool:
    if outcome.error_code in RETRYABLE:
        return True
    status = outcome.exchanges[-1].status if outcome.exchanges else None
    return outcome.error_code == "http_error" and status is not None and status >= 500


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_ATTEMPTS - 1,
    soft_time_limit=240,
    time_limit=300,
)
def run_tool_invocation(self: Any, invocation_id: int, arguments: dict[str, Any]) -> str:
    invocation = (
        ToolInvocation.objects.select_related("call", "tool", "tenant")
        .filter(pk=invocation_id)
        .first()
    )
    if invocation is None or invocation.call is None:
        return "missing"
    if invocation.status in (InvocationStatus.SUCCEEDED, InvocationStatus.FAILED):
        return "already finished"  # a redelivered message after the work was done
    call = invocation.call
    snapshot = _snapshot(invocation)
    request = ToolRequest(
        tool=snapshot,
        arguments=arguments,
        tenant_id=invocation.tenant.public_id,
        agent_id=call.agent.public_id if call.agent else "",
        call_id=call.public_id,
        function_call_id=invocation.function_call_id,
        end_user=call.end_user_ref,
        time_zone=invocation.tenant.time_zone,
    )
    mark_running(invocation_id)
    started = time.perf_counter()
    outcome = _run(request, invocation)
    duration_ms = round((time.perf_counter() - started) * 1000)
    if retryable(outcome) and self.request.retries < self.max_retries:
        ToolInvocation.objects.filter(pk=invocation_id).update(
            error_code=outcome.error_code, duration_ms=duration_ms
        )
        raise self.retry(countdown=2 ** (self.request.retries + 1))
    record_outcome(invocation_id, outcome, duration_ms)
    return deliver(invocation_id, outcome)


def _run(request: ToolRequest, invocation: ToolInvocation) -> ToolOutcome:
    remote_name = ""
    if request.tool.get("kind") == "mcp":
        prefix = f"{request.tool.get('name')}__"
        remote_name = invocation.tool_name.removeprefix(prefix)
    try:
        return asyncio.run(
            asyncio.wait_for(
                execute(request, secrets_of(invocation.tool), remote_name),
                float(request.tool.get("timeout_seconds") or 10) + 1,
            )
        )
    except TimeoutError:
        return ToolOutcome.failure("timeout", f"{invocation.tool_name} took too long.")


def _snapshot(invocation: ToolInvocation) -> dict[str, Any]:
    """The tool as the call's agent version knew it, else as it is now."""
    call = invocation.call
    version = call.agent_version if call is not None else None
    for tool in version.config.get("tools", []) if version is not None else []:
        if invocation.tool is not None and tool.get("id") == invocation.tool.public_id:
            return dict(tool)
    return (
        invocation.tool.snapshot()
        if invocation.tool is not None
        else {"name": invocation.tool_name}
    )


def deliver(invocation_id: int, outcome: ToolOutcome) -> str:
    """Send the result to the live call once; a call that has ended keeps it stored."""
    with transaction.atomic():
        invocation = (
            # of=self: PostgreSQL cannot lock the nullable side of the join to the call.
            ToolInvocation.objects.select_for_update(of=("self",))
            .select_related("call")
            .get(pk=invocation_id)
        )
        if invocation.delivery in (Delivery.DELIVERED, Delivery.CALL_ENDED):
            return invocation.delivery
        call = invocation.call
        if call is None or call.status != CallStatus.ACTIVE:
            invocation.delivery = Delivery.CALL_ENDED
            invocation.save(update_fields=["delivery"])
            return invocation.delivery
        invocation.delivery = Delivery.DELIVERED
        invocation.save(update_fields=["delivery"])
        group = call.group_name
    async_to_sync(get_channel_layer().group_send)(
        group,
        {
            "type": "tool.result",
            "invocation": invocation.public_id,
            "function_call_id": invocation.function_call_id,
            "name": invocation.tool_name,
            "output": outcome.output,
            "end_call": outcome.end_call,
        },
    )
    return Delivery.DELIVERED
