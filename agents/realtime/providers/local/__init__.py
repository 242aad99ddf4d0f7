"""The built-in offline provider: voice activity detection, Whisper, an engine and Piper.

No key, no network: audio never leaves the deployment. Registered as ``local`` with the
provider registry; it answers with the same Realtime server events as OpenAI.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable

from agents.config import AgentConfig
from agents.realtime.providers.base import (
    ProviderConnection,
    ProviderCredentials,
    ProviderError,
    RealtimeProvider,
)
from agents.realtime.providers.local.engine import EngineError, ResponseEngine
from agents.realtime.providers.local.runtime import run_cpu, warm_up
from agents.realtime.providers.local.session import LocalSession
from agents.realtime.providers.local.tts import load_voice

ENGINES = ("scripted", "llm")


def make_engine(config: AgentConfig) -> ResponseEngine:
    """The response engine an agent chose (``response_engine``; scripted by default)."""
    name = config.response_engine
    if name == "llm":
        from agents.realtime.providers.local.llm import LlmEngine

        return LlmEngine.from_settings()
    if name == "scripted":
        from agents.realtime.providers.local.scripted import ScriptedEngine

        return ScriptedEngine(today=_local_today(config.tenant_time_zone))
    raise EngineError(f"Unknown response engine {name!r}; choose one of {', '.join(ENGINES)}.")


def _local_today(time_zone: str) -> Callable[[], datetime.date]:
    """Today where the tenant is: callers say "tomorrow" in their own time zone."""
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return lambda: datetime.datetime.now(zone).date()


class LocalProvider(RealtimeProvider):
    name = "local"

    async def connect(
        self, config: AgentConfig, credentials: ProviderCredentials | None
    ) -> ProviderConnection:
        try:
            engine = make_engine(config)
        except EngineError as error:
            raise ProviderError(str(error)) from error
        # The first call on a process loads the models (about a second), off the loop.
        await run_cpu(warm_up)
        voice = await run_cpu(load_voice)
        return LocalSession(config, engine=engine, voice=voice)
