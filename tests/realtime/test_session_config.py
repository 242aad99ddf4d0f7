"""The session the broker asks the provider for, from an agent version's configuration."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from agents.config import AgentConfig
from agents.realtime.session_config import greeting_response, session_update
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory


@pytest.mark.django_db
def test_the_agent_configuration_becomes_a_ga_session_update(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="lookup_order")
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        voice="marin",
        language="fr-FR",
        vad_threshold=0.7,
        vad_silence_duration_ms=800,
        tools=[tool],
    )
    event = session_update(AgentConfig.from_version(agent.current_version.config))
    session = event["session"]
    assert event["type"] == "session.update"
    assert session["type"] == "realtime"
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "marin",
    }
    detection = session["audio"]["input"]["turn_detection"]
    assert (detection["type"], detection["threshold"], detection["silence_duration_ms"]) == (
        "server_vad",
        0.7,
        800,
    )
    assert session["audio"]["input"]["transcription"]["language"] == "fr"
    assert session["tools"] == [
        {
            "type": "function",
            "name": "lookup_order",
            "description": tool.description,
            "parameters": tool.parameters,
        }
    ]
    assert "temperature" not in session  # GA sessions have none
    from openai.types.realtime import SessionUpdateEvent

    SessionUpdateEvent.model_validate(event)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("audio_format", "wire"), [("g711_ulaw", "audio/pcmu"), ("g711_alaw", "audio/pcma")]
)
def test_telephony_agents_ask_for_g711(audio_format: str, wire: str, tenant_a: TenantWorld) -> None:
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        voice="alloy",
        audio_format=audio_format,
    )
    session = session_update(AgentConfig.from_version(agent.current_version.config))["session"]
    assert session["audio"]["input"]["format"] == {"type": wire}
    assert session["audio"]["output"]["format"] == {"type": wire}


@pytest.mark.django_db
def test_the_builtin_provider_speaks_pcm16_and_mulaw_not_alaw(tenant_a: TenantWorld) -> None:
    AgentFactory(tenant=tenant_a.tenant, name="Phone", audio_format="g711_ulaw").full_clean()
    agent = AgentFactory(tenant=tenant_a.tenant, audio_format="g711_alaw")
    with pytest.raises(ValidationError) as error:
        agent.full_clean()
    assert "audio_format" in error.value.message_dict


def test_semantic_vad_and_no_turn_detection() -> None:
    semantic = session_update(
        AgentConfig.from_version({"turn_detection": {"type": "semantic_vad", "eagerness": "high"}})
    )
    assert semantic["session"]["audio"]["input"]["turn_detection"]["eagerness"] == "high"
    manual = session_update(AgentConfig.from_version({"turn_detection": {"type": "none"}}))
    assert manual["session"]["audio"]["input"]["turn_detection"] is None


def test_greeting() -> None:
    assert greeting_response(AgentConfig(greeting="")) is None
    response = greeting_response(AgentConfig(greeting="Hello, Acme here."))
    assert response is not None
    assert response["response"]["instructions"].endswith("Hello, Acme here.")
