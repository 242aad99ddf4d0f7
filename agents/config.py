"""An agent version's configuration, typed: what a call runs with.

An ``AgentVersion`` stores its configuration as JSON (``Agent.configuration()``), and
versions saved before a setting existed lack it. ``AgentConfig.from_version`` reads that
JSON once, when a call opens, with every default in one place; the call path reads typed
attributes, never the dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.spec import ToolSpec


def _text(value: Any, default: str = "") -> str:
    return str(value) if value not in (None, "") else default


def _number(value: Any, default: float) -> float:
    # bool is an int: never a number here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


@dataclass(frozen=True)
class TurnDetection:
    """How the end of the caller's turn is found: ``server_vad`` (silence), ``semantic_vad``
    (the words) or ``none`` (the client commits its audio)."""

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: str = "auto"

    @classmethod
    def from_json(cls, value: Any) -> TurnDetection:
        data: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        default = cls()
        return cls(
            type=_text(data.get("type"), default.type),
            threshold=_number(data.get("threshold"), default.threshold),
            prefix_padding_ms=int(
                _number(data.get("prefix_padding_ms"), default.prefix_padding_ms)
            ),
            silence_duration_ms=int(
                _number(data.get("silence_duration_ms"), default.silence_duration_ms)
            ),
            eagerness=_text(data.get("eagerness"), default.eagerness),
        )


@dataclass(frozen=True)
class FaqEntry:
    question: str
    answer: str


@dataclass(frozen=True)
class AgentConfig:
    """One agent version as a call runs it."""

    name: str = ""
    provider: str = "local"
    response_engine: str = "scripted"
    model: str = ""
    credential: str = ""  # a provider credential's public id; "" for the platform's key
    instructions: str = ""
    voice: str = ""  # "" for the provider's own default voice
    audio_format: str = "pcm16"
    temperature: float = 0.8
    turn_detection: TurnDetection = field(default_factory=TurnDetection)
    greeting: str = ""
    greet_api_callers: bool = False
    faq: tuple[FaqEntry, ...] = ()
    language: str = ""
    max_call_duration_seconds: float = 3600.0
    idle_timeout_seconds: float = 0.0  # 0: no idle limit
    tools: tuple[ToolSpec, ...] = ()
    consent_prompt: str = ""
    recording_offered: bool = False
    consent_required: bool = False
    client_may_override: bool = False
    client_functions: str = "servers"  # who may declare functions: none, servers, all
    tool_calls_shown: str = "hidden"  # hidden, or hosted (as mcp_call items)
    strict_client_settings: bool = False
    show_configuration_to_browsers: bool = False
    transfer_number: str = ""  # E.164; "" asks staff to follow up instead
    voicemail_action: str = "hang_up"  # or leave_message
    voicemail_message: str = ""
    # Not the agent's: the tenant's, for the built-in voice ("tomorrow" is local).
    tenant_time_zone: str = "UTC"

    @classmethod
    def from_version(
        cls, config: Mapping[str, Any], *, tenant_time_zone: str = "UTC"
    ) -> AgentConfig:
        """Read an agent version's stored JSON; a setting it lacks takes its default."""
        default = cls()
        return cls(
            name=_text(config.get("name")),
            provider=_text(config.get("provider"), default.provider),
            response_engine=_text(config.get("response_engine"), default.response_engine),
            model=_text(config.get("model")),
            credential=_text(config.get("credential")),
            instructions=_text(config.get("instructions")),
            voice=_text(config.get("voice")),
            audio_format=_text(config.get("audio_format"), default.audio_format),
            temperature=_number(config.get("temperature"), default.temperature) or 0.8,
            turn_detection=TurnDetection.from_json(config.get("turn_detection")),
            greeting=_text(config.get("greeting")).strip(),
            greet_api_callers=bool(config.get("greet_api_callers")),
            faq=tuple(
                FaqEntry(_text(entry.get("question")), _text(entry.get("answer")))
                for entry in config.get("faq") or ()
                if isinstance(entry, Mapping)
            ),
            language=_text(config.get("language")),
            max_call_duration_seconds=_number(
                config.get("max_call_duration_seconds"), default.max_call_duration_seconds
            )
            or default.max_call_duration_seconds,
            idle_timeout_seconds=_number(config.get("idle_timeout_seconds"), 0.0),
            tools=tuple(
                ToolSpec.from_snapshot(tool)
                for tool in config.get("tools") or ()
                if isinstance(tool, Mapping)
            ),
            consent_prompt=_text(config.get("consent_prompt")),
            recording_offered=bool(config.get("recording_offered")),
            consent_required=bool(config.get("consent_required")),
            client_may_override=bool(config.get("client_may_override")),
            client_functions=_text(config.get("client_functions"), default.client_functions),
            tool_calls_shown=_text(config.get("tool_calls_shown"), default.tool_calls_shown),
            strict_client_settings=bool(config.get("strict_client_settings")),
            show_configuration_to_browsers=bool(config.get("show_configuration_to_browsers")),
            transfer_number=_text(config.get("transfer_number")),
            voicemail_action=_text(config.get("voicemail_action"), default.voicemail_action),
            voicemail_message=_text(config.get("voicemail_message")).strip(),
            tenant_time_zone=tenant_time_zone or "UTC",
        )
