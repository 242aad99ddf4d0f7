"""Fixtures for broker tests: a scripted provider in place of OpenAI, and a ready agent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agents.models import Agent
from agents.realtime.providers import registry
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider


@pytest.fixture
def scripted_provider() -> Iterator[type[ScriptedProvider]]:
    saved = dict(registry._PROVIDERS)
    ScriptedProvider.connections = []
    ScriptedProvider.configs = []
    ScriptedProvider.responder = None
    ScriptedProvider.reachable_for = None
    ScriptedProvider.connection_class = ScriptedConnection
    registry._PROVIDERS["openai"] = ScriptedProvider
    yield ScriptedProvider
    registry._PROVIDERS.clear()
    registry._PROVIDERS.update(saved)


@pytest.fixture
def openai_agent(tenant_a: TenantWorld) -> Agent:
    tool = ToolFactory(tenant=tenant_a.tenant, name="book_table")
    return AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        voice="alloy",
        instructions="You book tables at Acme.",
        greeting="",
        tools=[tool],
    )


def auth_headers(secret: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {secret}".encode())]
