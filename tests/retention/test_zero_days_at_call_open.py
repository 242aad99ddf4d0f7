"""0 days means "do not keep": a call opened under such a policy never writes that content.

The purge would remove it within the hour, but in that hour it could be read, searched
and exported; so the policy in force when the call opens decides what is written at all.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.models import Agent
from calls.models import CallSession, Recording, TranscriptItem
from retention.models import RetentionPolicy
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.realtime.conftest import auth_headers, scripted_provider
from tests.realtime.doubles import ScriptedProvider, usage
from tests.realtime.helpers import connect, receive, receive_until

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["scripted_provider"]  # the fixture, shared with the broker's tests


@pytest.fixture
def media_root(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _call(tenant_a: TenantWorld, agent: Agent, provider: type[ScriptedProvider]) -> CallSession:
    """A recording-consented call with one spoken turn, through the broker."""

    async def scenario() -> None:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}&consent=recording",
            auth_headers(tenant_a.secret),
        )
        await receive(communicator)
        connection = provider.connections[-1]
        await communicator.send_to(
            text_data='{"type": "input_audio_buffer.append", "audio": "AAAAAAAA"}'
        )
        connection.push(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "item_u1",
                "content_index": 0,
                "transcript": "My card number is 4242",
            }
        )
        connection.push(
            {
                "type": "response.done",
                "response": {"id": "resp_1", "status": "completed", "output": [], "usage": usage()},
            }
        )
        await receive_until(communicator, "response.done")
        await communicator.disconnect()

    asyncio.run(scenario())
    return CallSession.objects.filter(agent=agent).latest("started_at")


@pytest.fixture
def recording_agent(tenant_a: TenantWorld) -> Agent:
    return AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        voice="alloy",
        greeting="",
        recording_offered=True,
    )


def test_without_a_policy_everything_consented_is_written(
    tenant_a: TenantWorld,
    recording_agent: Agent,
    scripted_provider: type[ScriptedProvider],
    media_root: Path,
) -> None:
    call = _call(tenant_a, recording_agent, scripted_provider)
    assert (call.keeps_transcript, call.keeps_recording) == (True, True)
    assert TranscriptItem.objects.filter(call=call).exists()
    assert "4242" in call.transcript_text
    assert Recording.objects.filter(call=call).exists()


def test_zero_transcript_days_write_no_transcript_and_no_recording(
    tenant_a: TenantWorld,
    recording_agent: Agent,
    scripted_provider: type[ScriptedProvider],
    media_root: Path,
) -> None:
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, transcript_days=0)
    call = _call(tenant_a, recording_agent, scripted_provider)
    assert call.consent_scope == "recording"  # what the caller agreed to is still recorded
    assert not call.keeps_transcript
    assert not TranscriptItem.objects.filter(call=call).exists()
    assert call.transcript_text == ""
    assert not Recording.objects.filter(call=call).exists()
    assert not any(path.is_file() for path in media_root.rglob("*"))


def test_zero_recording_days_keep_the_transcript_but_record_nothing(
    tenant_a: TenantWorld,
    recording_agent: Agent,
    scripted_provider: type[ScriptedProvider],
    media_root: Path,
) -> None:
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=0)
    call = _call(tenant_a, recording_agent, scripted_provider)
    assert (call.keeps_transcript, call.keeps_recording) == (True, False)
    assert TranscriptItem.objects.filter(call=call).exists()
    assert not Recording.objects.filter(call=call).exists()
    assert not any(path.is_file() for path in media_root.rglob("*"))


def test_an_agent_override_of_zero_days_applies_to_that_agent_only(
    tenant_a: TenantWorld,
    recording_agent: Agent,
    scripted_provider: type[ScriptedProvider],
    media_root: Path,
) -> None:
    other = AgentFactory(
        tenant=tenant_a.tenant, provider="openai", model="gpt-realtime", voice="alloy", greeting=""
    )
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, transcript_days=30)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, agent=other, transcript_days=0)
    kept = _call(tenant_a, recording_agent, scripted_provider)
    dropped = _call(tenant_a, other, scripted_provider)
    assert kept.keeps_transcript and TranscriptItem.objects.filter(call=kept).exists()
    assert not dropped.keeps_transcript
    assert not TranscriptItem.objects.filter(call=dropped).exists()
