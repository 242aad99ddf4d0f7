"""An agent version's stored JSON read as the typed configuration a call runs with."""

from __future__ import annotations

from dataclasses import fields

import pytest

from agents.config import AgentConfig, FaqEntry, TurnDetection
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tools.spec import ToolSpec


@pytest.mark.django_db
def test_every_setting_an_agent_saves_is_read_into_the_typed_configuration(
    tenant_a: TenantWorld,
) -> None:
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        voice="marin",
        instructions="Book tables.",
        greeting="  Hello, Acme here. ",
        turn_detection="semantic_vad",
        semantic_eagerness="high",
        max_call_duration_seconds=600,
        idle_timeout_seconds=30,
        tools=[ToolFactory(tenant=tenant_a.tenant, name="book_table")],
    )
    stored = agent.current_version.config
    config = AgentConfig.from_version(stored, tenant_time_zone="Europe/Oslo")

    # The typed configuration has a field for everything a version stores.
    assert set(stored) <= {field.name for field in fields(AgentConfig)}
    assert (config.provider, config.model, config.voice) == ("openai", "gpt-realtime", "marin")
    assert config.instructions == "Book tables."
    assert config.greeting == "Hello, Acme here."
    assert config.turn_detection.type == "semantic_vad"
    assert config.turn_detection.eagerness == "high"
    assert (config.max_call_duration_seconds, config.idle_timeout_seconds) == (600.0, 30.0)
    assert [tool.name for tool in config.tools] == ["book_table"]
    assert config.tenant_time_zone == "Europe/Oslo"


def test_a_version_saved_before_a_setting_existed_gets_its_default() -> None:
    config = AgentConfig.from_version({"provider": "local", "model": "koe-local"})

    assert config == AgentConfig(model="koe-local")
    assert config.turn_detection == TurnDetection()
    assert config.client_functions == "servers"
    assert config.tool_calls_shown == "hidden"
    assert config.max_call_duration_seconds == 3600.0
    assert config.idle_timeout_seconds == 0.0


def test_values_of_the_wrong_kind_fall_back_to_the_defaults() -> None:
    config = AgentConfig.from_version(
        {
            "temperature": None,
            "max_call_duration_seconds": True,
            "idle_timeout_seconds": "30",
            "turn_detection": {"type": None, "threshold": "high", "silence_duration_ms": 800},
            "faq": [{"question": "Parking?", "answer": "Behind the building."}, "junk"],
            "tools": [{"name": "book_table"}, "junk"],
            "credential": None,
        }
    )

    assert config.temperature == 0.8
    assert config.max_call_duration_seconds == 3600.0
    assert config.idle_timeout_seconds == 0.0
    assert config.turn_detection == TurnDetection(silence_duration_ms=800)
    assert config.faq == (FaqEntry("Parking?", "Behind the building."),)
    assert config.tools == (ToolSpec(name="book_table"),)
    assert config.credential == ""
