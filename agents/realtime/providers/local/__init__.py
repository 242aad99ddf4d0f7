"""The built-in offline provider: voice activity detection, Whisper, an engine and Piper.

No key, no network: audio never leaves the deployment. Registered as ``local`` with the
provider registry; it answers with the same Realtime server events as OpenAI. The speech
stages themselves (VAD, speech-to-text, response engines, text-to-speech) are the
Django-free ``speech`` package; this package speaks the Realtime protocol over them
(``LocalSession``) and configures them from Koe's settings.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings

from agents.config import AgentConfig
from agents.realtime.providers.base import (
    ProviderConnection,
    ProviderCredentials,
    ProviderError,
    RealtimeProvider,
)
from agents.realtime.providers.local.session import LocalSession
from speech import runtime
from speech.engine import EngineError, ResponseEngine
from speech.runtime import ModelUnavailable, run_cpu, warm_up
from speech.tts import load_voice

if TYPE_CHECKING:
    from speech.llm import LlmEngine

ENGINES = ("scripted", "llm")
# The speech models' CPU pool, sized before its first use.
runtime.configure(workers=settings.KOE_LOCAL_WORKERS)


def make_engine(config: AgentConfig) -> ResponseEngine:
    """The response engine an agent chose (``response_engine``; scripted by default)."""
    name = config.response_engine
    if name == "llm":
        return llm_engine()
    if name == "scripted":
        from speech.scripted import ScriptedEngine

        return ScriptedEngine(today=_local_today(config.tenant_time_zone))
    raise EngineError(f"Unknown response engine {name!r}; choose one of {', '.join(ENGINES)}.")


def llm_engine() -> LlmEngine:
    """The ``llm`` engine, on the chat-completions server the operator configured."""
    from speech.llm import LlmEngine

    if not settings.KOE_LOCAL_LLM_BASE_URL:
        raise EngineError(
            "The llm response engine needs a chat-completions server: set "
            "KOE_LOCAL_LLM_BASE_URL (e.g. http://127.0.0.1:11434/v1 for Ollama) and "
            "KOE_LOCAL_LLM_MODEL, or use the scripted engine."
        )
    return LlmEngine(
        base_url=settings.KOE_LOCAL_LLM_BASE_URL,
        model=settings.KOE_LOCAL_LLM_MODEL,
        api_key=settings.KOE_LOCAL_LLM_API_KEY,
        timeout_seconds=settings.KOE_LOCAL_LLM_TIMEOUT_SECONDS,
    )


def warm_up_in_background() -> None:
    """Load the speech models now, off the loop, so a process's first call need not wait."""
    runtime.warm_up_in_background(settings.KOE_LOCAL_TTS)


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
        try:
            # The first call on a process loads the models (about a second), off the loop.
            await run_cpu(warm_up, settings.KOE_LOCAL_TTS)
            voice = await run_cpu(load_voice, settings.KOE_LOCAL_TTS)
        except ModelUnavailable as error:
            raise ProviderError(str(error)) from error
        return LocalSession(config, engine=engine, voice=voice)
