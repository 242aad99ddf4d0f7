"""Background tools: a Celery task runs the invocation and delivers its result to the call.

Acks late: a worker that dies mid-task leaves the message to be run again, within the
broker's visibility timeout (KOE_CELERY_VISIBILITY_TIMEOUT). Every run of one function
call shares its invocation row (the idempotency key is call id + function call id, also
sent to webhooks as Idempotency-Key), so a retry finishes what a dead worker started,
never runs a finished call again, and runs a tool that is not safe to repeat
(``retry_safe`` off) at most once. A result is delivered until the call confirms it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from celery import shared_task
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from calls.models import CallStatus
from tools.execution import execute
from tools.invocations import Delivery, InvocationStatus, ToolInvocation
from tools.outcomes import ToolOutcome, ToolRequest
from tools.runner import mark_running, record_outcome, secrets_of
from tools.spec import ToolSpec

logger = logging.getLogger("koe.tools")

MAX_ATTEMPTS = 4
# Sending a result to its call: how many times, and how long to wait for the call to
# confirm it each time.
DELIVERY_ATTEMPTS = 3
CONFIRMATION_SECONDS = 5.0
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
    if invocation.status in FINISHED:
        # A redelivered message after the work was done: the result may still not have
        # reached the call (its worker died between the two).
        if invocation.delivery == Delivery.PENDING:
            return deliver(invocation_id, _stored_outcome(invocation))
        return "already finished"
    call = invocation.call
    snapshot = _snapshot(invocation)
    if invocation.status == InvocationStatus.RUNNING and not snapshot.retry_safe:
        # An earlier run started and its worker died: it may have had its effect. A tool
        # that is not safe to run twice is reported, not run again.
        outcome = ToolOutcome.failure(
            "interrupted",
            f"{invocation.tool_name} may or may not have completed: the worker running it "
            "stopped. It was not run again; check before trying again.",
        )
        record_outcome(invocation_id, outcome, 0)
        return deliver(invocation_id, outcome)
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
        # Pending again, not running: a run that finds its row running knows a worker died.
        ToolInvocation.objects.filter(pk=invocation_id).update(
            status=InvocationStatus.PENDING, error_code=outcome.error_code, duration_ms=duration_ms
        )
        raise self.retry(countdown=2 ** (self.request.retries + 1))
    record_outcome(invocation_id, outcome, duration_ms)
    return deliver(invocation_id, outcome)


FINISHED = (InvocationStatus.SUCCEEDED, InvocationStatus.FAILED, InvocationStatus.CANCELLED)


def _stored_outcome(invocation: ToolInvocation) -> ToolOutcome:
    if invocation.stores_content:
        return ToolOutcome(output=invocation.result, ok=invocation.status == "succeeded")
    return ToolOutcome.failure(
        "result_lost", f"{invocation.tool_name} finished, but its result was not kept."
    )


def _run(request: ToolRequest, invocation: ToolInvocation) -> ToolOutcome:
    remote_name = ""
    if request.tool.kind == "mcp":
        prefix = f"{request.tool.name}__"
        remote_name = invocation.tool_name.removeprefix(prefix)
    try:
        return asyncio.run(
            asyncio.wait_for(
                execute(request, secrets_of(invocation.tool), remote_name),
                request.tool.timeout_seconds + 1,
            )
        )
    except TimeoutError:
        return ToolOutcome.failure("timeout", f"{invocation.tool_name} took too long.")


def _snapshot(invocation: ToolInvocation) -> ToolSpec:
    """The tool as the call's agent version knew it, else as it is now."""
    call = invocation.call
    version = call.agent_version if call is not None else None
    for tool in version.config.get("tools", []) if version is not None else []:
        if invocation.tool is not None and tool.get("id") == invocation.tool.public_id:
            return ToolSpec.from_snapshot(tool)
    if invocation.tool is not None:
        return ToolSpec.from_snapshot(invocation.tool.snapshot())
    return ToolSpec(name=invocation.tool_name)


def deliver(invocation_id: int, outcome: ToolOutcome) -> str:
    """Send the result to the live call until the call confirms it has it (the consumer
    marks the row delivered); a call that has ended keeps it stored.

    Sent again if no confirmation comes: a lost message (the channel layer's Redis
    restarting, the call's process busy) must not lose the result. The call ignores a
    result it already has, so sending twice is harmless."""
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
        group = call.group_name
        message = {
            "type": "tool.result",
            "invocation": invocation.public_id,
            "function_call_id": invocation.function_call_id,
            "name": invocation.tool_name,
            "output": outcome.output,
            "end_call": outcome.end_call,
        }
    for attempt in range(1, DELIVERY_ATTEMPTS + 1):
        try:
            async_to_sync(get_channel_layer().group_send)(group, message)
        except Exception as error:
            logger.warning(
                "sending invocation %s failed (attempt %d): %r", invocation_id, attempt, error
            )
            time.sleep(attempt)
            continue
        confirmed = _confirmation(invocation_id)
        if confirmed is not None:
            return confirmed
    logger.warning("invocation %s: the call never confirmed its result", invocation_id)
    return Delivery.PENDING


def _confirmation(invocation_id: int) -> str | None:
    """Wait for the call to confirm the result (or to end); None if it did neither."""
    deadline = time.monotonic() + CONFIRMATION_SECONDS
    while time.monotonic() < deadline:
        invocation = ToolInvocation.objects.select_related("call").get(pk=invocation_id)
        if invocation.delivery == Delivery.DELIVERED:
            return Delivery.DELIVERED
        if invocation.call is None or invocation.call.status != CallStatus.ACTIVE:
            ToolInvocation.objects.filter(pk=invocation_id, delivery=Delivery.PENDING).update(
                delivery=Delivery.CALL_ENDED
            )
            return Delivery.CALL_ENDED
        time.sleep(0.05)
    return None


# --- queuing ----------------------------------------------------------------------------------

_eager_runs: set[asyncio.Task[Any]] = set()


async def queue_invocation(invocation_id: int, arguments: dict[str, Any]) -> None:
    """Hand a background invocation to Celery; the arguments travel in the message only."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        await sync_to_async(run_tool_invocation.delay)(invocation_id, arguments)
        return
    # The embedded default has no worker: run it on this process once the caller has been
    # told it is running, as a worker would, and deliver through the same channel layer.
    # In a thread of its own, as a worker would be: its delivery waits for the call to
    # confirm, and the call's own database work must not queue behind it.
    task = asyncio.get_running_loop().create_task(
        sync_to_async(run_tool_invocation.apply, thread_sensitive=False)(
            args=(invocation_id, arguments)
        )
    )
    _eager_runs.add(task)
    task.add_done_callback(_eager_runs.discard)
