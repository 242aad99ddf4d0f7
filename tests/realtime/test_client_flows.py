"""What clients built for OpenAI do, through the consumer: they are not refused for it.

A client's response.create during the greeting waits its turn; an API caller is greeted
only where the agent says so; a tenant's server may declare functions it runs itself,
beside the agent's tools, and answers them (recorded like the agent's)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agents.models import Agent
from calls.models import CallSession, TranscriptItem
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider, usage
from tests.realtime.helpers import connect, eventually, receive, receive_until, session_token

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _agent(tenant_a: TenantWorld, **options: Any) -> Agent:
    tool = ToolFactory(tenant=tenant_a.tenant, name="book_table")
    defaults: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-realtime",
        "voice": "alloy",
        "greeting": "Welcome to Acme.",
        "tools": [tool],
    }
    agent: Agent = AgentFactory(tenant=tenant_a.tenant, **{**defaults, **options})
    return agent


async def _connect_as_browser(agent: Agent, token: str) -> Any:
    return await connect(
        f"/v1/realtime?model={agent.public_id}",
        subprotocols=["realtime", f"openai-insecure-api-key.{token}"],
    )


def _responses_sent(connection: ScriptedConnection) -> list[dict[str, Any]]:
    return [event for event in connection.sent if event["type"] == "response.create"]


def test_a_clients_response_create_during_the_greeting_waits_its_turn(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    agent = _agent(tenant_a, greet_api_callers=True)

    async def scenario() -> list[dict[str, Any]]:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}", auth_headers(tenant_a.secret)
        )
        await receive(communicator)
        connection = scripted_provider.connections[0]
        connection.push({"type": "response.created", "response": {"id": "resp_greeting"}})
        await communicator.send_to(
            text_data='{"type": "conversation.item.create", "item": {"type": "message", '
            '"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}}'
        )
        await communicator.send_to(text_data='{"type": "response.create"}')
        await eventually(
            lambda: any(e["type"] == "conversation.item.create" for e in connection.sent)
        )
        # Held back while the greeting is under way: only the greeting was asked for.
        assert len(_responses_sent(connection)) == 1
        connection.push(
            {
                "type": "response.done",
                "response": {
                    "id": "resp_greeting",
                    "status": "completed",
                    "output": [],
                    "usage": usage(),
                },
            }
        )
        await eventually(lambda: len(_responses_sent(connection)) == 2)
        seen = await receive_until(communicator, "response.done")
        await communicator.disconnect()
        return seen

    seen = asyncio.run(scenario())
    assert not [event for event in seen if event["type"] == "error"]
    sent = _responses_sent(scripted_provider.connections[0])
    assert "Welcome to Acme" in sent[0]["response"]["instructions"]  # the greeting
    assert sent[1] == {"type": "response.create"}  # the client's, as it sent it


@pytest.mark.parametrize(("greet_api_callers", "greeted"), [(False, False), (True, True)])
def test_api_callers_are_greeted_only_where_the_agent_says(
    tenant_a: TenantWorld,
    scripted_provider: type[ScriptedProvider],
    greet_api_callers: bool,
    greeted: bool,
) -> None:
    agent = _agent(tenant_a, greet_api_callers=greet_api_callers)

    async def scenario() -> None:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}", auth_headers(tenant_a.secret)
        )
        await receive(communicator)
        connection = scripted_provider.connections[0]
        await eventually(lambda: any(e["type"] == "session.update" for e in connection.sent))
        await communicator.disconnect()

    asyncio.run(scenario())
    assert bool(_responses_sent(scripted_provider.connections[0])) is greeted


def test_widget_callers_are_always_greeted(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    agent = _agent(tenant_a, greet_api_callers=False)
    token = session_token(tenant_a.secret, agent.public_id)

    async def scenario() -> None:
        communicator = await _connect_as_browser(agent, token)
        await receive(communicator)
        connection = scripted_provider.connections[0]
        await eventually(lambda: bool(_responses_sent(connection)))
        await communicator.disconnect()

    asyncio.run(scenario())


def test_a_tenants_server_declares_its_own_function_and_answers_it(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    agent = _agent(tenant_a, greeting="")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}&consent=transcript",
            auth_headers(tenant_a.secret),
        )
        await receive(communicator)
        connection = scripted_provider.connections[0]
        await communicator.send_to(
            text_data=json.dumps(
                {"type": "session.update", "session": {"type": "realtime", "tools": [WEATHER]}}
            )
        )
        await eventually(lambda: sum(e["type"] == "session.update" for e in connection.sent) == 2)
        connection.call_function("get_weather", '{"city": "Oslo"}', call_id="call_w")
        seen = await receive_until(communicator, "response.done")
        await communicator.send_to(
            text_data=json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": "call_w",
                        "output": "Snow.",
                    },
                }
            )
        )
        await eventually(
            lambda: any(
                e["type"] == "conversation.item.create"
                and e["item"]["type"] == "function_call_output"
                for e in connection.sent
            )
        )
        await communicator.disconnect()
        return seen

    seen = asyncio.run(scenario())
    connection = scripted_provider.connections[0]
    declared = [e for e in connection.sent if e["type"] == "session.update"][-1]["session"]["tools"]
    # The agent's own tool stays (Koe runs it); the client's is added beside it.
    assert [tool["name"] for tool in declared] == ["book_table", "get_weather"]
    # The client sees its own function as a function (it runs it), not as a hosted tool.
    done = next(e for e in seen if e["type"] == "response.done")
    assert done["response"]["output"][0]["type"] == "function_call"
    rows = list(
        TranscriptItem.objects.filter(role="tool").values_list(
            "tool_name", "tool_arguments", "text"
        )
    )
    assert rows == [("get_weather", '{"city": "Oslo"}', ""), ("get_weather", "", "Snow.")]
    assert CallSession.objects.get().end_reason == "client_closed"


def test_browsers_may_not_declare_functions_by_default(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    agent = _agent(tenant_a, greeting="")
    token = session_token(tenant_a.secret, agent.public_id)

    async def scenario() -> None:
        communicator = await _connect_as_browser(agent, token)
        await receive(communicator)
        connection = scripted_provider.connections[0]
        await communicator.send_to(
            text_data=json.dumps(
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "tools": [WEATHER], "truncation": "auto"},
                }
            )
        )
        await eventually(lambda: sum(e["type"] == "session.update" for e in connection.sent) == 2)
        await communicator.disconnect()

    asyncio.run(scenario())
    update = [e for e in scripted_provider.connections[0].sent if e["type"] == "session.update"][-1]
    assert "tools" not in update["session"]  # dropped; the rest applied
    assert update["session"]["truncation"] == "auto"
