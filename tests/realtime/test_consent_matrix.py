"""The consent matrix: each scope stores exactly what it allows, in the database and storage.

One call per scope runs through the broker with everything a call can leave behind: the
caller's audio, their transcribed words, the agent's spoken answer, and a tool call with
arguments and a result. Then the database and the media folder are read back.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from agents.models import Agent
from calls.models import CallSession, Recording, TranscriptItem, UsageRecord
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.realtime.helpers import connect, eventually, receive, receive_until
from tools.invocations import ToolInvocation

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_WORDS = "my card number is 4242"
SPOKEN_ANSWER = "Your table for two is booked."


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.KOE_RECORDING_FLUSH_SECONDS = 0.05
    return settings.MEDIA_ROOT


@pytest.fixture
def agent(tenant_a: TenantWorld) -> Agent:
    tool = ToolFactory(
        tenant=tenant_a.tenant,
        name="book_table",
        kind="mock",
        webhook_url="",
        mock_response="Booked for {party_size}.",
        parameters={"type": "object", "properties": {"party_size": {"type": "integer"}}},
    )
    return AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        voice="marin",
        greeting="",
        recording_offered=True,
        tools=[tool],
    )


def _a_full_call(
    world: TenantWorld, agent: Agent, provider: type[ScriptedProvider], consent: str
) -> CallSession:
    def responder(event: dict[str, Any], connection: ScriptedConnection) -> None:
        if event["type"] == "response.create":  # after the tool's output: the spoken answer
            connection.speak("resp_answer", SPOKEN_ANSWER, seconds=0.3)

    provider.responder = responder

    async def scenario() -> None:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}&consent={consent}&end_user=cust-1",
            auth_headers(world.secret),
        )
        await receive(communicator)
        connection = provider.connections[-1]
        audio = base64.b64encode(bytes(range(256)) * 19).decode()  # ~100 ms of noise
        for _ in range(5):
            await communicator.send_to(
                text_data=f'{{"type": "input_audio_buffer.append", "audio": "{audio}"}}'
            )
        await eventually(lambda: len(connection.raw_sent) >= 6)
        connection.push(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "item_u1",
                "content_index": 0,
                "transcript": SECRET_WORDS,
            }
        )
        connection.call_function("book_table", '{"party_size": 2}')
        await receive_until(communicator, "response.done")  # the function call
        await receive_until(communicator, "response.done")  # the spoken answer
        await communicator.disconnect()

    asyncio.run(scenario())
    return CallSession.objects.get(agent=agent)


def _files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_no_consent_keeps_metadata_only(
    tenant_a: TenantWorld,
    agent: Agent,
    scripted_provider: type[ScriptedProvider],
    media_root: Path,
) -> None:
    call = _a_full_call(tenant_a, agent, scripted_provider, "none")
    assert call.consent_scope == "none"
    assert not TranscriptItem.objects.filter(call=call).exists()
    assert call.transcript_text == ""
    invocation = ToolInvocation.objects.get(call=call)
    assert (invocation.arguments, invocation.result) == (None, "")  # the row, for statistics
    assert invocation.status == "succeeded"
    assert not Recording.objects.filter(call=call).exists()
    assert _files(media_root) == []
    # What metadata is: the call's times, usage and outcome.
    assert call.status == "ended" and call.duration_ms is not None
    assert UsageRecord.objects.filter(call=call).count() == 2


def test_transcript_consent_keeps_words_and_tool_content_but_no_audio(
    tenant_a: TenantWorld,
    agent: Agent,
    scripted_provider: type[ScriptedProvider],
    media_root: Path,
) -> None:
    call = _a_full_call(tenant_a, agent, scripted_provider, "transcript")
    said = list(TranscriptItem.objects.filter(call=call).values_list("role", "text"))
    assert ("user", SECRET_WORDS) in said
    assert ("assistant", SPOKEN_ANSWER) in said
    assert SECRET_WORDS in call.transcript_text
    invocation = ToolInvocation.objects.get(call=call)
    assert invocation.arguments == {"party_size": 2}
    assert "Booked for 2." in invocation.result
    assert not Recording.objects.filter(call=call).exists()
    assert _files(media_root) == []


def test_recording_consent_keeps_all_of_it_and_one_stereo_wav(
    tenant_a: TenantWorld,
    agent: Agent,
    scripted_provider: type[ScriptedProvider],
    media_root: Path,
) -> None:
    call = _a_full_call(tenant_a, agent, scripted_provider, "recording")
    assert TranscriptItem.objects.filter(call=call, text=SECRET_WORDS).exists()
    assert ToolInvocation.objects.get(call=call).arguments == {"party_size": 2}
    recording = Recording.objects.get(call=call)
    assert (recording.status, recording.channels, recording.sample_rate) == (
        "complete",
        2,
        24000,
    )
    # Exactly one file: the WAV (its parts are gone).
    assert _files(media_root) == [media_root / recording.file.name]
    assert recording.file.name.endswith(f"{call.public_id}.wav")
