"""The local provider behind the broker: engine choice, refusals, and the llm engine by voice."""

from __future__ import annotations

import asyncio
import datetime
import json
import zoneinfo
from typing import Any

import pytest

from agents.config import AgentConfig
from agents.realtime.providers.local import _local_today, make_engine
from calls.models import CallSession
from speech.engine import EngineError
from speech.llm import LlmEngine
from speech.scripted import ScriptedEngine
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tests.fakes.chat_server import FakeChatServer, FakeToolCall, Reply
from tests.local.helpers import appends, assert_valid_server_events, utterance
from tests.realtime.conftest import auth_headers
from tests.realtime.helpers import connect, receive


def test_the_agent_chooses_its_engine(settings: Any) -> None:
    settings.KOE_LOCAL_LLM_BASE_URL = "http://127.0.0.1:11434/v1"
    assert isinstance(make_engine(AgentConfig()), ScriptedEngine)
    assert isinstance(make_engine(AgentConfig(response_engine="llm")), LlmEngine)
    with pytest.raises(EngineError, match="Unknown response engine"):
        make_engine(AgentConfig(response_engine="oracle"))
    settings.KOE_LOCAL_LLM_BASE_URL = ""
    with pytest.raises(EngineError, match="KOE_LOCAL_LLM_BASE_URL"):
        make_engine(AgentConfig(response_engine="llm"))


def test_today_is_the_tenants() -> None:
    zone = "Pacific/Kiritimati"  # UTC+14: a different date from UTC for half the day
    assert _local_today(zone)() == datetime.datetime.now(zoneinfo.ZoneInfo(zone)).date()
    assert _local_today("Not/AZone")() == datetime.datetime.now(datetime.UTC).date()


async def _until(communicator: Any, event_type: str, seen: list[dict[str, Any]]) -> None:
    while True:
        event = await receive(communicator, timeout=30)
        seen.append(event)
        if event["type"] == event_type:
            return


@pytest.mark.django_db(transaction=True)
def test_an_llm_agent_without_a_configured_server_is_refused_clearly(
    tenant_a: TenantWorld, settings: Any
) -> None:
    settings.KOE_LOCAL_LLM_BASE_URL = ""
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        provider="local",
        model="koe-local",
        voice="joe",
        response_engine="llm",
    )

    async def scenario() -> dict[str, Any]:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}", auth_headers(tenant_a.secret)
        )
        event = await receive(communicator)
        await communicator.disconnect()
        return event

    event = asyncio.run(scenario())
    assert event["error"]["code"] == "provider_unavailable"
    assert CallSession.objects.get().end_reason == "provider_error"
    assert "KOE_LOCAL_LLM_BASE_URL" in CallSession.objects.get().end_detail


@pytest.mark.django_db(transaction=True)
def test_an_llm_agent_hears_calls_a_tool_and_speaks_through_the_broker(
    tenant_a: TenantWorld, settings: Any
) -> None:
    """Speech in, the operator's chat server decides (a tool, then words), speech out."""
    tool = ToolFactory(
        tenant=tenant_a.tenant,
        name="book_table",
        kind="mock",
        mock_response="Booked for {party_size}.",
        parameters={
            "type": "object",
            "properties": {"party_size": {"type": "integer"}},
            "required": ["party_size"],
        },
    )
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        provider="local",
        model="koe-local",
        voice="joe",
        response_engine="llm",
        instructions="You are the host of a small bistro.",
        greeting="",
        tools=[tool],
    )
    with FakeChatServer(api_key="sk-local-llm") as server:
        settings.KOE_LOCAL_LLM_BASE_URL = server.url
        settings.KOE_LOCAL_LLM_API_KEY = "sk-local-llm"
        settings.KOE_LOCAL_LLM_MODEL = "llama3.2"
        server.queue(
            Reply(tool_calls=[FakeToolCall("book_table", {"party_size": 4})]),
            Reply(text="All done. Your table for four is booked."),
        )

        async def scenario() -> list[dict[str, Any]]:
            communicator = await connect(
                f"/v1/realtime?model={agent.public_id}&consent=transcript",
                auth_headers(tenant_a.secret),
                timeout=30,
            )
            seen: list[dict[str, Any]] = []
            await _until(communicator, "session.updated", seen)
            for frame in appends(utterance("A table for four, please.")):
                await communicator.send_to(text_data=frame)
            await _until(communicator, "response.done", seen)  # the tool call
            await _until(communicator, "response.done", seen)  # the spoken answer
            await communicator.disconnect()
            return seen

        seen = asyncio.run(scenario())
        bodies = server.bodies

    assert_valid_server_events(seen)
    heard = next(e for e in seen if e["type"].endswith("input_audio_transcription.completed"))
    first, second = bodies
    assert first["model"] == "llama3.2"
    assert first["messages"][0]["role"] == "system"
    assert "host of a small bistro" in first["messages"][0]["content"]
    assert first["messages"][-1] == {"role": "user", "content": heard["transcript"]}
    assert [t["function"]["name"] for t in first["tools"]] == ["book_table"]
    # The platform ran the mock tool and gave its output back to the model.
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"]) == {"ok": True, "message": "Booked for 4."}
    final = [e["response"] for e in seen if e["type"] == "response.done"][-1]
    spoken = final["output"][0]["content"][0]["transcript"]
    assert spoken == "All done. Your table for four is booked."
    deltas = [e for e in seen if e["type"] == "response.output_audio.delta"]
    assert deltas
