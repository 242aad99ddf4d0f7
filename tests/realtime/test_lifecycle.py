"""Server-side tools, provider faults, limits and operator control of a live call."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from agents.models import Agent
from agents.realtime import call_tools, watchdog
from agents.realtime.errors import CLOSE_PROVIDER_ERROR, CLOSE_UNAVAILABLE
from calls.models import CallSession, TranscriptItem
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider, usage
from tests.realtime.helpers import connect, receive, receive_until
from tools.outcomes import ToolOutcome
from tools.runner import ToolCallContext

pytestmark = pytest.mark.django_db(transaction=True)

RUNS: list[ToolCallContext] = []


async def booking_runner(context: ToolCallContext) -> ToolOutcome:
    """The test double for the tools layer: records the call and answers."""
    RUNS.append(context)
    arguments = json.loads(context.arguments)
    return ToolOutcome.success({"booked": True, "people": arguments["people"]})


def function_call_response(connection: ScriptedConnection) -> None:
    connection.push(
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}
    )
    connection.push(
        {
            "type": "response.done",
            "response": {
                "id": "resp_1",
                "status": "completed",
                "usage": usage(),
                "output": [
                    {
                        "id": "item_fc1",
                        "type": "function_call",
                        "call_id": "call_abc",
                        "name": "book_table",
                        "arguments": '{"people": 2}',
                    }
                ],
            },
        }
    )


def test_server_side_tool_round_trip(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    scripted_provider: type[ScriptedProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(call_tools, "run_tool_call", booking_runner)
    RUNS.clear()

    def responder(event: dict[str, Any], connection: ScriptedConnection) -> None:
        # After the tool output, the model speaks the result.
        if event["type"] == "response.create" and any(
            e["type"] == "conversation.item.create" for e in connection.sent
        ):
            connection.push({"type": "response.created", "response": {"id": "resp_2"}})
            connection.push(
                {
                    "type": "response.output_audio_transcript.done",
                    "item_id": "item_a2",
                    "transcript": "Your table for two is booked.",
                }
            )
            connection.push(
                {
                    "type": "response.done",
                    "response": {
                        "id": "resp_2",
                        "status": "completed",
                        "output": [],
                        "usage": usage(),
                    },
                }
            )

    scripted_provider.responder = responder

    async def scenario() -> list[dict[str, Any]]:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}&consent=transcript",
            auth_headers(tenant_a.secret),
        )
        await receive(communicator)
        connection = scripted_provider.connections[0]
        function_call_response(connection)
        await receive_until(communicator, "response.done")
        events = await receive_until(communicator, "response.done")
        # The client may not answer the server's tool call itself: ignored, never relayed.
        forged = json.dumps(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "call_abc", "output": "{}"},
            }
        )
        await communicator.send_to(text_data=forged)
        await communicator.send_to(text_data='{"type": "made.up"}')
        assert (await receive(communicator))["error"]["code"] == "unknown_event_type"
        assert forged not in connection.raw_sent
        await communicator.disconnect()
        return events

    events = asyncio.run(scenario())
    assert events[-2]["transcript"] == "Your table for two is booked."
    assert len(RUNS) == 1
    assert RUNS[0].tool.name == "book_table"
    assert RUNS[0].function_call_id == "call_abc"
    sent = scripted_provider.connections[0].sent
    output = next(e for e in sent if e["type"] == "conversation.item.create")
    assert output["item"] == {
        "type": "function_call_output",
        "call_id": "call_abc",
        "output": '{"booked": true, "people": 2}',
    }
    assert sent[-1]["type"] == "response.create" or any(
        e["type"] == "response.create" for e in sent
    )
    tool_rows = TranscriptItem.objects.filter(role="tool").order_by("sequence")
    assert [(row.tool_name, row.tool_arguments, row.text) for row in tool_rows] == [
        ("book_table", '{"people": 2}', ""),
        ("book_table", "", '{"booked": true, "people": 2}'),
    ]


def _ends_with(
    scenario_push: Any,
    openai_agent: Agent,
    tenant_a: TenantWorld,
    scripted_provider: type[ScriptedProvider],
) -> tuple[dict[str, Any], int]:
    async def scenario() -> tuple[dict[str, Any], int]:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}&consent=transcript",
            auth_headers(tenant_a.secret),
        )
        await receive(communicator)
        scenario_push(scripted_provider.connections[0])
        while True:
            event = await receive(communicator)
            if event["type"] == "error":
                break
        closing = await communicator.receive_output(timeout=5)
        while closing["type"] != "websocket.close":
            closing = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return event, closing.get("code", 1000)

    return asyncio.run(scenario())


def test_a_provider_lost_mid_response_ends_the_call_and_keeps_the_transcript(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    scripted_provider.reachable_for = 1  # it hangs up, and cannot be reached again

    def push(connection: ScriptedConnection) -> None:
        connection.push(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "i1",
                "transcript": "Hello?",
            }
        )
        connection.push({"type": "response.created", "response": {"id": "resp_1"}})
        connection.push({"type": "response.output_audio.delta", "delta": "AAAA", "item_id": "a1"})
        connection.hang_up()

    event, code = _ends_with(push, openai_agent, tenant_a, scripted_provider)
    assert event["error"]["type"] == "server_error"
    assert code == CLOSE_PROVIDER_ERROR
    call = CallSession.objects.get()
    assert call.end_reason == "provider_error"
    assert call.status == "ended"
    assert list(call.transcript.values_list("text", flat=True)) == ["Hello?"]


def test_upstream_error_event_ends_the_call(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    def push(connection: ScriptedConnection) -> None:
        connection.push(
            {
                "type": "error",
                "event_id": "e1",
                "error": {
                    "type": "server_error",
                    "code": "server_error",
                    "message": "The server had an error",
                },
            }
        )

    event, code = _ends_with(push, openai_agent, tenant_a, scripted_provider)
    # The provider's own error event is relayed first; the call then ends.
    assert event["error"]["message"] == "The server had an error"
    assert code == CLOSE_PROVIDER_ERROR
    call = CallSession.objects.get()
    assert call.end_reason == "provider_error"
    assert "server had an error" in call.end_detail


def test_provider_refusing_the_connection(
    tenant_a: TenantWorld, openai_agent: Agent, settings: Any
) -> None:
    settings.KOE_OPENAI_REALTIME_URL = "ws://127.0.0.1:9/v1"  # discard port: refused
    settings.OPENAI_API_KEY = "sk-operator"

    async def scenario() -> tuple[dict[str, Any], int]:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        event = await receive(communicator)
        closing = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return event, closing["code"]

    event, code = asyncio.run(scenario())
    assert event["error"]["code"] == "provider_unavailable"
    assert code == CLOSE_UNAVAILABLE
    assert CallSession.objects.get().end_reason == "provider_error"


@pytest.mark.parametrize(
    ("field", "reason"),
    [("idle_timeout_seconds", "idle_timeout"), ("max_call_duration_seconds", "max_duration")],
)
def test_limits_end_the_call(
    field: str,
    reason: str,
    tenant_a: TenantWorld,
    scripted_provider: type[ScriptedProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watchdog, "WATCHDOG_INTERVAL_SECONDS", 0.02)
    limits: dict[str, Any] = {"idle_timeout_seconds": 0, field: 1}
    agent = AgentFactory(
        tenant=tenant_a.tenant, provider="openai", model="gpt-realtime", voice="alloy", **limits
    )

    async def scenario() -> dict[str, Any]:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}", auth_headers(tenant_a.secret)
        )
        await receive(communicator)
        event = await receive(communicator, timeout=5)
        await communicator.disconnect()
        return event

    event = asyncio.run(scenario())
    assert event["error"]["code"] == f"call_ended_{reason}"
    assert CallSession.objects.get().end_reason == reason
    assert scripted_provider.connections[0].closed


def test_an_operator_ends_the_call_through_the_channel_layer(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> dict[str, Any]:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        await receive(communicator)
        call = await database_sync_to_async(CallSession.objects.get)()
        await get_channel_layer().group_send(
            call.group_name, {"type": "call.end", "reason": "operator"}
        )
        return await receive(communicator)

    event = asyncio.run(scenario())
    assert event["error"]["code"] == "call_ended_operator"
    assert CallSession.objects.get().end_reason == "operator"


def test_a_call_cut_short_while_its_provider_connects_is_recorded_cleanly(
    tenant_a: TenantWorld, openai_agent: Agent, caplog: Any
) -> None:
    """Daphne cancels a connecting consumer (client gone, or shutdown): no flush, no gauge."""
    from agents.realtime.providers import registry
    from calls.metrics import ACTIVE_CALLS

    class SlowProvider(ScriptedProvider):
        async def connect(self, config: dict[str, Any], credentials: Any) -> Any:
            await asyncio.sleep(30)  # e.g. the local provider loading its models

    saved = dict(registry._PROVIDERS)
    registry._PROVIDERS["openai"] = SlowProvider
    active_before = ACTIVE_CALLS.labels("openai")._value.get()

    async def scenario() -> None:
        from channels.testing import WebsocketCommunicator

        from koe.asgi import application

        communicator = WebsocketCommunicator(
            application,
            f"/v1/realtime?model={openai_agent.public_id}",
            headers=auth_headers(tenant_a.secret),
        )
        with pytest.raises(asyncio.TimeoutError):
            await communicator.connect(timeout=0.5)  # cancels the application

    try:
        asyncio.run(scenario())
    finally:
        registry._PROVIDERS.clear()
        registry._PROVIDERS.update(saved)
    call = CallSession.objects.get()
    assert call.status == "ended"
    assert call.end_reason == "server_shutdown"
    assert ACTIVE_CALLS.labels("openai")._value.get() == active_before
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
