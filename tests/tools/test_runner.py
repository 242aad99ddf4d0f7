"""The tool runner: arguments checked, every run recorded as consent allows, kinds dispatched."""

from __future__ import annotations

import asyncio
import datetime
import json
import zoneinfo
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from calls.models import CallSession, CallStatus
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory, ToolFactory
from tools import tasks as tool_tasks
from tools.dispatch import run_tool_call
from tools.invocations import ToolInvocation, confirm_delivery
from tools.models import ToolDefinition
from tools.outcomes import ToolOutcome
from tools.runner import ToolCallContext
from tools.spec import ToolSpec

pytestmark = pytest.mark.django_db(transaction=True)

BOOKING_SCHEMA = {
    "type": "object",
    "properties": {
        "party_size": {"type": "integer", "minimum": 1, "maximum": 12},
        "time": {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"},
    },
    "required": ["party_size", "time"],
}


def booking_tool(world: TenantWorld, **fields: Any) -> ToolDefinition:
    defaults: dict[str, Any] = {
        "tenant": world.tenant,
        "name": "book_table",
        "kind": "mock",
        "webhook_url": "",
        "mock_response": "Booked for {party_size} at {time}.",
        "parameters": BOOKING_SCHEMA,
    }
    return ToolFactory(**{**defaults, **fields})


def start_call(
    world: TenantWorld, tool: ToolDefinition, consent: str = "transcript"
) -> CallSession:
    agent = AgentFactory(tenant=world.tenant, tools=[tool])
    return CallFactory(agent=agent, consent_scope=consent, end_user_ref="customer-42")


def context(
    call: CallSession, tool: ToolDefinition, arguments: str, fc: str = "fc_1"
) -> ToolCallContext:
    snapshot = next(t for t in call.agent_version.config["tools"] if t["name"] == tool.name)
    return ToolCallContext(
        tenant_id=call.tenant.public_id,
        agent_id=call.agent.public_id,
        call_id=call.public_id,
        tool=ToolSpec.from_snapshot(snapshot),
        function_call_id=fc,
        arguments=arguments,
    )


def run(ctx: ToolCallContext) -> ToolOutcome:
    return asyncio.run(run_tool_call(ctx))


def test_an_inline_tool_runs_and_its_invocation_is_recorded(tenant_a: TenantWorld) -> None:
    tool = booking_tool(tenant_a)
    call = start_call(tenant_a, tool)

    outcome = run(context(call, tool, '{"party_size": 2, "time": "19:00"}'))

    assert outcome.ok
    assert json.loads(outcome.output) == {"ok": True, "message": "Booked for 2 at 19:00."}
    invocation = ToolInvocation.objects.get()
    assert (invocation.tenant, invocation.tool, invocation.call) == (tenant_a.tenant, tool, call)
    assert (invocation.status, invocation.attempts, invocation.delivery) == (
        "succeeded",
        1,
        "inline",
    )
    assert invocation.arguments == {"party_size": 2, "time": "19:00"}
    assert json.loads(invocation.result)["message"] == "Booked for 2 at 19:00."
    assert invocation.duration_ms is not None and invocation.finished_at is not None
    assert invocation.idempotency_key == f"{call.public_id}:fc_1"


def test_without_transcript_consent_only_status_and_timing_are_kept(tenant_a: TenantWorld) -> None:
    tool = booking_tool(tenant_a)
    call = start_call(tenant_a, tool, consent="none")

    run(context(call, tool, '{"party_size": 2, "time": "19:00"}'))

    invocation = ToolInvocation.objects.get()
    assert invocation.status == "succeeded"
    assert invocation.duration_ms is not None
    assert (invocation.arguments, invocation.result, invocation.stores_content) == (None, "", False)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ('{"party_size": 2}', "'time' is a required property"),
        ('{"party_size": 40, "time": "19:00"}', "party_size: 40 is greater than the maximum of 12"),
        ('{"party_size": 2, "time": "7pm"}', "time: '7pm' does not match"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_invalid_arguments_go_back_to_the_model_and_nothing_runs(
    tenant_a: TenantWorld, arguments: str, problem: str
) -> None:
    tool = booking_tool(tenant_a, mock_response="SHOULD NOT RUN")
    call = start_call(tenant_a, tool)

    outcome = run(context(call, tool, arguments))

    error = json.loads(outcome.output)["error"]
    assert (outcome.ok, error["code"]) == (False, "invalid_arguments")
    assert problem in error["message"]
    assert "SHOULD NOT RUN" not in outcome.output
    invocation = ToolInvocation.objects.get()
    assert (invocation.status, invocation.error_code, invocation.attempts) == (
        "failed",
        "invalid_arguments",
        0,
    )


def test_a_repeated_function_call_is_answered_once(tenant_a: TenantWorld) -> None:
    tool = booking_tool(tenant_a)
    call = start_call(tenant_a, tool)
    first = run(context(call, tool, '{"party_size": 2, "time": "19:00"}'))

    again = run(context(call, tool, '{"party_size": 9, "time": "20:00"}'))

    assert again.output == first.output
    assert ToolInvocation.objects.count() == 1


def test_current_time_is_told_in_the_tenants_time_zone(tenant_a: TenantWorld) -> None:
    tenant_a.tenant.time_zone = "Asia/Tokyo"
    tenant_a.tenant.save()
    tool = booking_tool(
        tenant_a,
        name="current_time",
        kind="builtin",
        builtin_name="current_time",
        parameters={"type": "object", "properties": {}},
    )
    call = start_call(tenant_a, tool)

    result = json.loads(run(context(call, tool, "{}")).output)

    told = datetime.datetime.fromisoformat(result["time"])
    assert told.utcoffset() == datetime.timedelta(hours=9)
    now = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert abs((now - told).total_seconds()) < 60
    assert result["message"].startswith("It is ")


def test_end_call_asks_the_broker_to_hang_up_after_the_goodbye(tenant_a: TenantWorld) -> None:
    tool = booking_tool(
        tenant_a,
        name="end_call",
        kind="builtin",
        builtin_name="end_call",
        parameters={"type": "object", "properties": {}},
    )
    call = start_call(tenant_a, tool)

    outcome = run(context(call, tool, ""))

    assert outcome.ok and outcome.end_call
    assert "goodbye" in json.loads(outcome.output)["message"]


def test_a_background_tool_answers_later_through_the_calls_group(
    tenant_a: TenantWorld, settings: Any
) -> None:
    """On the embedded default (eager Celery) the task runs on this process, after the
    runner has answered 'pending', and delivers through the channel layer. (With a real
    worker: tests/tools/test_background_worker.py.)"""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    tool = booking_tool(tenant_a, execution="background")
    call = start_call(tenant_a, tool)

    async def scenario() -> tuple[ToolOutcome, dict[str, Any]]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(call.group_name, channel)
        outcome = await run_tool_call(context(call, tool, '{"party_size": 4, "time": "20:30"}'))
        message = await asyncio.wait_for(layer.receive(channel), 10)
        # As the live call does once it has the result: only then is it delivered.
        await database_sync_to_async(confirm_delivery)(message["invocation"])
        await asyncio.gather(*tool_tasks._eager_runs)
        return outcome, message

    outcome, message = asyncio.run(scenario())

    assert outcome.pending
    assert json.loads(outcome.output)["status"] == "running"
    assert message["type"] == "tool.result"
    assert message["function_call_id"] == "fc_1"
    assert json.loads(message["output"]) == {"ok": True, "message": "Booked for 4 at 20:30."}
    invocation = ToolInvocation.objects.get()
    assert (invocation.status, invocation.delivery, invocation.execution) == (
        "succeeded",
        "delivered",
        "background",
    )


def test_a_background_result_for_an_ended_call_is_stored_not_delivered(
    tenant_a: TenantWorld,
) -> None:
    from tools.tasks import run_tool_invocation

    tool = booking_tool(tenant_a, execution="background")
    call = start_call(tenant_a, tool)
    invocation = ToolInvocation.objects.create(
        tenant=tenant_a.tenant,
        tool=tool,
        tool_name="book_table",
        call=call,
        function_call_id="fc_9",
        idempotency_key=f"{call.public_id}:fc_9",
        source="call",
        execution="background",
        stores_content=True,
    )
    CallSession.objects.filter(pk=call.pk).update(status=CallStatus.ENDED)

    run_tool_invocation.apply(args=(invocation.pk, {"party_size": 3, "time": "18:00"}))

    invocation.refresh_from_db()
    assert (invocation.status, invocation.delivery) == ("succeeded", "call_ended")
    assert json.loads(invocation.result)["message"] == "Booked for 3 at 18:00."
    # a redelivered message after the work was done changes nothing
    run_tool_invocation.apply(args=(invocation.pk, {"party_size": 3, "time": "18:00"}))
    invocation.refresh_from_db()
    assert invocation.attempts == 1


def test_transfer_to_human_marks_the_call_and_tells_the_tenant(
    tenant_a: TenantWorld, settings: Any
) -> None:
    from events.actions import set_events_url
    from events.models import OutboundEvent
    from tests.fakes.http_receiver import HttpReceiver

    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    tool = booking_tool(
        tenant_a,
        name="transfer_to_human",
        kind="builtin",
        builtin_name="transfer_to_human",
        parameters={
            "type": "object",
            "properties": {"reason": {"type": "string"}},
            "required": ["reason"],
        },
    )
    call = start_call(tenant_a, tool)
    with HttpReceiver() as receiver:
        set_events_url(tenant_a.tenant, receiver.url("/events"))
        outcome = run(context(call, tool, '{"reason": "Wants to speak to the chef."}'))
        received = [json.loads(request.body) for request in receiver.requests]

    assert outcome.ok and outcome.transfer_reason == "Wants to speak to the chef."
    call.refresh_from_db()
    assert (call.needs_follow_up, call.follow_up_reason) == (True, "Wants to speak to the chef.")
    event = OutboundEvent.objects.get(type="call.transfer_requested")
    assert event.status == "delivered"
    [delivered] = [body for body in received if body["type"] == "call.transfer_requested"]
    assert delivered["data"]["reason"] == "Wants to speak to the chef."
    assert delivered["data"]["call_id"] == call.public_id
