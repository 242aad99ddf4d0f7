"""Recording tests: the broker tests' scripted provider, a fake recorder clock, a media
folder of their own, and an agent that offers recording."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.models import Agent
from calls import recordings
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.realtime.conftest import scripted_provider
from tests.recordings.broker_call import FakeClock

__all__ = ["scripted_provider"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(recordings, "monotonic", fake)
    return fake


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.KOE_RECORDING_FLUSH_SECONDS = 0.05  # real seconds between flushes
    settings.KOE_RECORDING_SETTLE_MS = 2000  # of the fake clock
    return settings.MEDIA_ROOT


@pytest.fixture
def recording_agent(tenant_a: TenantWorld) -> Agent:
    return AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        greeting="",
        recording_offered=True,
    )
