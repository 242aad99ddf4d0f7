"""The built-in voice's session as a client sees it (GA ``session`` object: its defaults,
how a ``session.update`` merges in), and what a response asks the engine. No I/O."""

from __future__ import annotations

import copy
import time
from typing import Any

from agents.config import AgentConfig
from agents.realtime.providers.local.conversation import Conversation, new_id
from agents.realtime.providers.local.responses import AUDIO_FORMAT, Response
from speech.engine import EngineRequest, FaqEntry, ToolSpec

MODEL_NAME = "koe-local"


def default_session(config: AgentConfig) -> dict[str, Any]:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": MODEL_NAME,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "expires_at": int(time.time()) + 3600,
        "audio": {
            "input": {
                "format": dict(AUDIO_FORMAT),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {
                "format": dict(AUDIO_FORMAT),
                "voice": config.voice or "joe",
                "speed": 1.0,
            },
        },
        "include": None,
    }


# Session fields where null means "off"; anywhere else null means "not given".
NULL_MEANS_OFF = frozenset(
    {"turn_detection", "noise_reduction", "transcription", "tracing", "prompt"}
)


def merge_session(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if value is None and key not in NULL_MEANS_OFF:
            continue
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_session(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def engine_request(
    config: AgentConfig, session: dict[str, Any], conversation: Conversation, response: Response
) -> EngineRequest:
    """What the engine is asked for one response: the conversation, the session's
    instructions and functions (with the agent's example phrases), the agent's FAQ."""
    example_phrases = {tool.name: tool.example_phrases for tool in config.tools}
    tools = [
        ToolSpec(
            name=str(tool.get("name", "")),
            description=str(tool.get("description", "")),
            parameters=tool.get("parameters") or {"type": "object", "properties": {}},
            example_phrases=example_phrases.get(str(tool.get("name", "")), ()),
        )
        for tool in session.get("tools") or []
        if isinstance(tool, dict) and tool.get("type", "function") == "function"
    ]
    instructions = "\n\n".join(
        [str(session.get("instructions") or ""), *conversation.system_notes()]
    ).strip()
    return EngineRequest(
        history=conversation.history(),
        instructions=instructions,
        tools=tools,
        response_instructions=response.instructions,
        greeting=config.greeting,
        faq=[FaqEntry(entry.question, entry.answer) for entry in config.faq],
        temperature=config.temperature,
        agent_name=config.name,
    )
