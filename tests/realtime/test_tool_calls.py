"""Tools during a live call: the real runner behind the broker (a scripted provider upstream)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from agents.models import Agent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.realtime.helpers import connect, receive, receive_until
from tools.invocations import ToolInvocation

pytestmark = pytest.mark.django_db(transaction=True)

EMPTY = {"type": "object", "properties": {}}


def agent_with(world: TenantWorld, **tool_fields: Any) -> Agent:
    tool = ToolFactory(tenant=world.tenant, webhook_url="", **tool_fields)
    return AgentFactory(
        tenant=world.tenant, provider="openai", model="gpt-realtime", voice="marin", tools=[tool]
    )


def test_end_call_hangs_up_once_the_goodbye_has_played(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    agent = agent_with(
        tenant_a, name="end_call", kind="builtin", builtin_name="end_call", parameters=EMPTY
    )

    def responder(event: dict[str, Any], connection: ScriptedConnection) -> None:
        if event["type"] == "response.create" and any(
            e["type"] == "conversation.item.create" for e in connection.sent
        ):
            connection.speak("resp_bye", "Thank you for calling, goodbye!", seconds=0.6)

    scripted_provider.responder = responder

    async def scenario() -> tuple[float, dict[str, Any]]:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}", auth_headers(tenant_a.secret)
        )
        await receive(communicator)
        scripted_provider.connections[0].call_function("end_call", "{}")
        await receive_until(communicator, "response.done")  # the function call
        await receive_until(communicator, "response.done")  # the goodbye
        said_goodbye = time.monotonic()
        closing = await communicator.receive_output(timeout=5)
        return time.monotonic() - said_goodbye, closing

    waited, closing = asyncio.run(scenario())

    assert closing == {"type": "websocket.close", "code": 1000}
    assert 0.4 < waited < 3  # the 0.6 s goodbye played out first
    call = CallSession.objects.get()
    assert (call.status, call.end_reason) == ("ended", "agent")
    sent = scripted_provider.connections[0].sent
    output = next(e for e in sent if e["type"] == "conversation.item.create")
    assert json.loads(output["item"]["output"])["ok"] is True


def test_a_background_tool_lets_the_call_go_on_then_delivers_its_result(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider], settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the real worker: test_background_worker.py
    agent = agent_with(
        tenant_a,
        name="check_stock",
        kind="mock",
        execution="background",
        mock_response="{count} left in stock.",
        parameters={"type": "object", "properties": {"count": {"type": "integer"}}},
    )

    def responder(event: dict[str, Any], connection: ScriptedConnection) -> None:
        if event["type"] != "response.create":
            return
        if (event.get("response") or {}).get("instructions"):
            connection.speak("resp_wait", "One moment, I'm checking.", seconds=0.2)
        else:
            connection.speak("resp_result", "There are three left.", seconds=0.2)

    scripted_provider.responder = responder

    async def scenario() -> list[dict[str, Any]]:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}&consent=transcript",
            auth_headers(tenant_a.secret),
        )
        await receive(communicator)
        scripted_provider.connections[0].call_function("check_stock", '{"count": 3}')
        seen = await receive_until(communicator, "response.done")  # the function call
        seen += await receive_until(communicator, "response.done")  # "one moment"
        seen += await receive_until(communicator, "response.done")  # the result
        await communicator.disconnect()
        return seen

    seen = asyncio.run(scenario())

    spoken = [e["transcript"] for e in seen if e["type"].endswith("transcript.done")]
    assert spoken == ["One moment, I'm checking.", "There are three left."]
    sent = scripted_provider.connections[0].sent
    kinds = [e["type"] for e in sent if e["type"] != "session.update"]
    # first a response that only says it is working, then the output, then its response
    assert kinds == ["response.create", "conversation.item.create", "response.create"]
    assert "working on it" in sent[1]["response"]["instructions"]
    output = next(e for e in sent if e["type"] == "conversation.item.create")["item"]
    assert output["call_id"] == "call_fc"
    assert json.loads(output["output"]) == {"ok": True, "message": "3 left in stock."}
    invocation = ToolInvocation.objects.get()
    assert (invocation.status, invocation.delivery) == ("succeeded", "delivered")
