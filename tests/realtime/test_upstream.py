"""The real openai and azure provider code against the fake Realtime server.

Every event the client receives (relayed or Koe's own) must validate against the
official SDK's ``RealtimeServerEvent``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from agents.models import Agent
from agents.realtime import call_tools
from agents.realtime.errors import CLOSE_PROVIDER_ERROR, CLOSE_UNAVAILABLE
from calls.models import CallSession, TranscriptItem, UsageRecord
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CredentialFactory
from tests.fakes.realtime_server import FakeRealtimeServer, FunctionCall, Turn, silence, tone
from tests.realtime.conftest import auth_headers
from tests.realtime.helpers import connect, receive
from tools.outcomes import ToolOutcome
from tools.runner import ToolCallContext

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_EVENT = TypeAdapter(RealtimeServerEvent)
UPSTREAM_KEY = "sk-test-upstream"


@pytest.fixture
def upstream_settings(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.OPENAI_API_KEY = UPSTREAM_KEY
    monkeypatch.setattr(call_tools, "run_tool_call", booking_runner)
    return settings


async def booking_runner(context: ToolCallContext) -> ToolOutcome:
    people = json.loads(context.arguments)["people"]
    return ToolOutcome.success({"booked": True, "people": people, "call": context.call_id})


def chunks(audio: bytes, milliseconds: int = 20) -> list[str]:
    size = 48 * milliseconds  # bytes of 24 kHz PCM16 per ms
    return [
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(audio[i : i + size]).decode(),
            }
        )
        for i in range(0, len(audio), size)
    ]


async def collect_until(communicator: Any, event_type: str, seen: list[dict[str, Any]]) -> None:
    while True:
        event = await receive(communicator)
        SERVER_EVENT.validate_python(event)
        seen.append(event)
        if event["type"] == event_type:
            return


async def speak(communicator: Any, milliseconds: int = 600) -> None:
    for frame in chunks(tone(milliseconds) + silence(700)):
        await communicator.send_to(text_data=frame)


def test_a_spoken_conversation_through_the_openai_provider(
    tenant_a: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> FakeRealtimeServer:
        script = [
            Turn(user="What are your opening hours?", assistant="We open at nine every weekday.")
        ]
        async with FakeRealtimeServer(script, expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            communicator = await connect(
                f"/v1/realtime?model={openai_agent.public_id}&consent=transcript",
                auth_headers(tenant_a.secret),
            )
            await collect_until(communicator, "session.updated", seen)
            await speak(communicator)
            await collect_until(communicator, "response.done", seen)
            await communicator.disconnect()
            return fake

    fake = asyncio.run(scenario())
    types = [event["type"] for event in seen]
    for expected in (
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio.delta",
        "response.output_audio_transcript.done",
        "response.done",
    ):
        assert expected in types
    assert types.index("input_audio_buffer.speech_stopped") < types.index(
        "response.output_audio.delta"
    )
    # The server set the agent's configuration upstream, with the operator's key.
    connection = fake.connections[0]
    assert connection["path"] == "/v1/realtime"
    assert connection["query"] == {"model": "gpt-realtime"}
    assert connection["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    update = fake.received[0]
    assert update["type"] == "session.update"
    assert update["session"]["instructions"] == "You book tables at Acme."

    call = CallSession.objects.get()
    assert call.end_reason == "client_closed"
    assert call.turn_count == 1
    assert len(call.latencies_ms) == 1
    assert list(TranscriptItem.objects.values_list("role", "text")) == [
        ("user", "What are your opening hours?"),
        ("assistant", "We open at nine every weekday."),
    ]
    usage = UsageRecord.objects.get()
    assert usage.input_audio_tokens > 0 and usage.output_audio_tokens > 0
    assert call.total_tokens == usage.total_tokens


def test_a_server_side_tool_call_and_its_spoken_result(
    tenant_a: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> FakeRealtimeServer:
        script = [
            Turn(
                user="A table for two tonight",
                function_call=FunctionCall("book_table", {"people": 2}),
                assistant_after_call="Your table for two is booked.",
            )
        ]
        async with FakeRealtimeServer(script, expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            communicator = await connect(
                f"/v1/realtime?model={openai_agent.public_id}&consent=transcript",
                auth_headers(tenant_a.secret),
            )
            await collect_until(communicator, "session.updated", seen)
            await speak(communicator)
            await collect_until(communicator, "response.done", seen)  # the function call
            await collect_until(communicator, "response.done", seen)  # the spoken result
            await communicator.disconnect()
            return fake

    fake = asyncio.run(scenario())
    transcripts = [
        e["transcript"] for e in seen if e["type"] == "response.output_audio_transcript.done"
    ]
    assert transcripts == ["Your table for two is booked."]
    call = CallSession.objects.get()
    assert fake.function_outputs[0]["output"] == json.dumps(
        {"booked": True, "people": 2, "call": call.public_id}
    )
    assert [e["type"] for e in fake.received if e["type"] == "response.create"] == [
        "response.create"
    ]
    assert UsageRecord.objects.filter(call=call).count() == 2
    assert list(TranscriptItem.objects.values_list("role", "tool_name")) == [
        ("user", ""),
        ("tool", "book_table"),
        ("tool", "book_table"),
        ("assistant", ""),
    ]


def test_the_azure_provider_uses_the_deployment_and_api_key_header(
    tenant_a: TenantWorld, upstream_settings: Any
) -> None:
    upstream_settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]  # the fake Azure is on loopback

    async def scenario() -> FakeRealtimeServer:
        async with FakeRealtimeServer([], expected_key="azure-key-123") as fake:
            # channels' database_sync_to_async closes its connections (the async ORM does not).
            credential = await database_sync_to_async(CredentialFactory)(
                tenant=tenant_a.tenant,
                name="Azure",
                provider="azure",
                api_key="azure-key-123",
                azure_endpoint=fake.azure_endpoint,
            )
            agent = await database_sync_to_async(AgentFactory)(
                tenant=tenant_a.tenant,
                provider="azure",
                model="my-realtime-deployment",
                voice="alloy",
                credential=credential,
            )
            communicator = await connect(
                f"/v1/realtime?model={agent.public_id}", auth_headers(tenant_a.secret)
            )
            seen: list[dict[str, Any]] = []
            await collect_until(communicator, "session.updated", seen)
            await communicator.disconnect()
            return fake

    fake = asyncio.run(scenario())
    connection = fake.connections[0]
    assert connection["path"] == "/openai/v1/realtime"
    assert connection["query"] == {"model": "my-realtime-deployment"}
    assert connection["headers"]["api-key"] == "azure-key-123"
    assert "Authorization" not in connection["headers"]


@pytest.mark.parametrize(
    ("options", "code", "close"),
    [
        ({"refuse_connections": True}, "provider_unavailable", CLOSE_UNAVAILABLE),
        ({"expected_key": "another-key"}, "provider_unavailable", CLOSE_UNAVAILABLE),
        (
            {"error_on": "input_audio_buffer.append"},
            "call_ended_provider_error",
            CLOSE_PROVIDER_ERROR,
        ),
    ],
)
def test_upstream_faults_end_the_call_cleanly(
    options: dict[str, Any],
    code: str,
    close: int,
    tenant_a: TenantWorld,
    openai_agent: Agent,
    upstream_settings: Any,
) -> None:
    async def scenario() -> tuple[dict[str, Any], int]:
        script = [Turn(user="Hello", assistant="Hello there, how can I help you today?")]
        async with FakeRealtimeServer(script, **{"expected_key": UPSTREAM_KEY, **options}) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            communicator = await connect(
                f"/v1/realtime?model={openai_agent.public_id}&consent=transcript",
                auth_headers(tenant_a.secret),
            )
            for frame in chunks(tone(600) + silence(700)):
                try:
                    await communicator.send_to(text_data=frame)
                except asyncio.CancelledError:
                    break  # the call already ended; read below how it ended
            while True:
                # No short timeouts here: a receive that times out cancels the application.
                event = await receive(communicator)
                SERVER_EVENT.validate_python(event)
                if event["type"] == "error" and event["error"]["code"] == code:
                    break
            closing = await communicator.receive_output(timeout=5)
            while closing["type"] != "websocket.close":
                closing = await communicator.receive_output(timeout=5)
            await communicator.disconnect()
            return event, closing["code"]

    event, close_code = asyncio.run(scenario())
    assert event["error"]["type"] == "server_error"
    assert close_code == close
    call = CallSession.objects.get()
    assert call.end_reason == "provider_error"
    assert call.status == "ended"


def test_an_azure_endpoint_on_a_private_address_is_never_called(
    tenant_a: TenantWorld, upstream_settings: Any
) -> None:
    """Saved before the check existed (or by the admin): refused when the call opens."""

    async def scenario() -> tuple[FakeRealtimeServer, dict[str, Any]]:
        async with FakeRealtimeServer([], expected_key="azure-key-123") as fake:
            credential = await database_sync_to_async(CredentialFactory)(
                tenant=tenant_a.tenant,
                name="Azure",
                provider="azure",
                api_key="azure-key-123",
                azure_endpoint=fake.azure_endpoint,  # http://127.0.0.1:port
            )
            agent = await database_sync_to_async(AgentFactory)(
                tenant=tenant_a.tenant,
                provider="azure",
                model="my-realtime-deployment",
                voice="alloy",
                credential=credential,
            )
            communicator = await connect(
                f"/v1/realtime?model={agent.public_id}", auth_headers(tenant_a.secret)
            )
            event = await receive(communicator)
            await communicator.disconnect()
            return fake, event

    fake, event = asyncio.run(scenario())
    assert event["error"]["code"] == "provider_unavailable"
    assert fake.connections == []  # the key was never sent
    assert "not allowed" in CallSession.objects.get().end_detail
