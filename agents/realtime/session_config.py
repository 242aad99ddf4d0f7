"""The provider session an agent version asks for, as a GA ``session.update`` event."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from agents.config import AgentConfig
from agents.realtime.policy import AgentSettings
from tools.functions import model_functions

PCM16_24K = {"type": "audio/pcm", "rate": 24000}
# The agent's audio_format, as the GA protocol names the formats.
AUDIO_FORMATS: dict[str, dict[str, Any]] = {
    "pcm16": PCM16_24K,
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}


def turn_detection(config: AgentConfig) -> dict[str, Any] | None:
    detection = config.turn_detection
    if detection.type == "none":
        return None
    if detection.type == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": detection.eagerness,
            "create_response": True,
            "interrupt_response": True,
        }
    return {
        "type": "server_vad",
        "threshold": detection.threshold,
        "prefix_padding_ms": detection.prefix_padding_ms,
        "silence_duration_ms": detection.silence_duration_ms,
        "create_response": True,
        "interrupt_response": True,
    }


def function_tools(config: AgentConfig) -> list[dict[str, Any]]:
    return [function.as_session_tool() for function in model_functions(config.tools)]


def transcription(config: AgentConfig) -> dict[str, Any]:
    """The input transcription every call runs (what the audit transcript's caller side is)."""
    settings_: dict[str, Any] = {"model": settings.KOE_TRANSCRIPTION_MODEL}
    language = config.language.split("-")[0]
    if language:
        settings_["language"] = language
    return settings_


def agent_settings(config: AgentConfig, agent_id: str) -> AgentSettings:
    """The agent's values a client's session.update and response.create are compared with."""
    return AgentSettings(
        agent_id=agent_id,
        model=config.model,
        voice=config.voice or "alloy",
        instructions=config.instructions,
        tool_names=frozenset(function.name for function in model_functions(config.tools)),
        tool_definitions=tuple(function_tools(config)),
        transcription=transcription(config),
        output_modalities=("audio",),
    )


def session_update(config: AgentConfig) -> dict[str, Any]:
    """What the broker sends first: the agent's configuration, enforced by the server."""
    audio_format = AUDIO_FORMATS.get(config.audio_format, PCM16_24K)
    session: dict[str, Any] = {
        "type": "realtime",
        "instructions": config.instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": audio_format,
                "transcription": transcription(config),
                "turn_detection": turn_detection(config),
            },
            "output": {"format": audio_format, "voice": config.voice or "alloy"},
        },
        "tools": function_tools(config),
        "tool_choice": "auto",
    }
    return {"type": "session.update", "session": session}


def greeting_response(config: AgentConfig) -> dict[str, Any] | None:
    greeting = config.greeting
    if not greeting:
        return None
    return {
        "type": "response.create",
        "response": {
            "instructions": f"Greet the caller by saying exactly this, and nothing else: {greeting}"
        },
    }


def late_result_note(tool_name: str, output: str) -> dict[str, Any]:
    """A background tool's result that came after the caller was told it did not answer:
    news for the model (its function call was already answered)."""
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "system",
            "content": [
                {
                    "type": "input_text",
                    "text": f"Update: {tool_name} finished after all. Its result: {output} "
                    "Tell the caller briefly.",
                }
            ],
        },
    }
