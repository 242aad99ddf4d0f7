"""The realtime consumer end to end with a scripted provider (WebsocketCommunicator)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from channels.testing import WebsocketCommunicator

from agents.models import Agent
from calls.models import CallSession, TranscriptItem, UsageRecord
from koe.asgi import application
from tests.conftest import TenantWorld
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedProvider, usage

pytestmark = pytest.mark.django_db(transaction=True)


async def _connect(path: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def eventually(condition: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


async def _receive(communicator: WebsocketCommunicator) -> dict[str, Any]:
    return orjson.loads(await communicator.receive_from(timeout=5))


async def _receive_until(
    communicator: WebsocketCommunicator, event_type: str
) -> list[dict[str, Any]]:
    seen = []
    while True:
        event = await _receive(communicator)
        seen.append(event)
        if event["type"] == event_type:
            return seen


def _turn(connection: Any, transcript: str, reply: str, response_id: str) -> None:
    connection.push(
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "item_u1"}
    )
    connection.push(
        {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900, "item_id": "item_u1"}
    )
    connection.push(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_u1",
            "content_index": 0,
            "transcript": transcript,
        }
    )
    connection.push(
        {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}}
    )
    connection.push(
        {
            "type": "response.output_audio.delta",
            "response_id": response_id,
            "item_id": "item_a1",
            "delta": "AAAA",
        }
    )
    connection.push(
        {
            "type": "response.output_audio_transcript.done",
            "response_id": response_id,
            "item_id": "item_a1",
            "transcript": reply,
        }
    )
    connection.push(
        {
            "type": "response.done",
            "response": {"id": response_id, "status": "completed", "output": [], "usage": usage()},
        }
    )


def test_a_conversation_is_relayed_and_recorded(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> None:
        communicator = await _connect(
            f"/v1/realtime?model={openai_agent.public_id}&consent=transcript&end_user=cust-42",
            auth_headers(tenant_a.secret),
        )
        created = await _receive(communicator)
        assert created["type"] == "session.created"
        connection = scripted_provider.connections[0]
        update = connection.sent[0]
        assert update["type"] == "session.update"
        assert update["session"]["instructions"] == "You book tables at Acme."
        assert [tool["name"] for tool in update["session"]["tools"]] == ["book_table"]
        assert update["session"]["audio"]["output"]["voice"] == "alloy"

        frame = '{"type": "input_audio_buffer.append",  "audio": "AAAA"}'
        await communicator.send_to(text_data=frame)
        # The audio frame goes upstream byte for byte.
        await eventually(lambda: frame in connection.raw_sent)
        _turn(connection, "A table for two please", "Booked for two.", "resp_1")
        events = await _receive_until(communicator, "response.done")
        assert [event["type"] for event in events][-1] == "response.done"
        await communicator.disconnect()

    asyncio.run(scenario())

    call = CallSession.objects.get()
    assert call.status == "ended"
    assert call.end_reason == "client_closed"
    assert call.consent_scope == "transcript"
    assert call.end_user_ref == "cust-42"
    assert call.agent_version == openai_agent.current_version
    assert call.turn_count == 1
    assert call.total_tokens == 30
    assert len(call.latencies_ms) == 1
    assert list(TranscriptItem.objects.values_list("role", "text")) == [
        ("user", "A table for two please"),
        ("assistant", "Booked for two."),
    ]
    record = UsageRecord.objects.get()
    assert (record.input_audio_tokens, record.cached_text_tokens, record.output_audio_tokens) == (
        15,
        4,
        8,
    )


def test_without_consent_no_transcript_text_is_stored(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> None:
        communicator = await _connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        await _receive(communicator)
        _turn(scripted_provider.connections[0], "My card is 4242", "Thanks.", "resp_1")
        await _receive_until(communicator, "response.done")
        await communicator.disconnect()

    asyncio.run(scenario())

    call = CallSession.objects.get()
    assert call.consent_scope == "none"
    assert TranscriptItem.objects.count() == 0
    assert call.turn_count == 1
    assert UsageRecord.objects.filter(call=call).count() == 1
