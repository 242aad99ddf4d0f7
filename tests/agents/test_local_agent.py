"""What the built-in provider can do is enforced on the agent: its voice, model, English."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from agents.models import Agent
from tests.conftest import TenantWorld


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"voice": "alloy"}, "voice"),
        ({"model": "gpt-realtime"}, "model"),
        ({"language": "fr-FR"}, "language"),
        ({"audio_format": "g711_alaw"}, "audio_format"),
    ],
)
def test_the_local_provider_refuses_what_it_cannot_do(
    tenant_a: TenantWorld, changes: dict[str, str], field: str
) -> None:
    agent = Agent(tenant=tenant_a.tenant, name="Host", provider="local", **changes)
    with pytest.raises(ValidationError) as raised:
        agent.full_clean()
    assert list(raised.value.message_dict) == [field]


@pytest.mark.django_db
def test_a_default_agent_is_a_valid_local_agent(tenant_a: TenantWorld) -> None:
    agent = Agent(tenant=tenant_a.tenant, name="Host", language="en-GB")
    agent.full_clean()
    assert (agent.provider, agent.model, agent.voice, agent.response_engine) == (
        "local",
        "koe-local",
        "joe",
        "scripted",
    )
