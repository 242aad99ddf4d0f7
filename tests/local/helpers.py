"""Speech for the local provider's tests, synthesised here by the local voice, and checks."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import numpy as np
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from speech.audio import PROTOCOL_RATE
from speech.tts import PiperSpeech

SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)


@functools.cache
def _voice() -> PiperSpeech:
    return PiperSpeech(deterministic=True)


@functools.cache
def spoken(text: str) -> bytes:
    """24 kHz PCM16 of ``text`` said by the Piper voice."""
    return _voice().speak(text).astype("<i2").tobytes()


def silence(milliseconds: int) -> bytes:
    return bytes(2 * PROTOCOL_RATE * milliseconds // 1000)


def utterance(text: str, *, lead_ms: int = 300, trail_ms: int = 900) -> bytes:
    """Speech with quiet before and after, long enough for server_vad to end the turn."""
    return silence(lead_ms) + spoken(text) + silence(trail_ms)


def appends(audio: bytes, milliseconds: int = 40) -> list[str]:
    size = 2 * PROTOCOL_RATE * milliseconds // 1000
    return [
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(audio[i : i + size]).decode(),
            }
        )
        for i in range(0, len(audio), size)
    ]


def audio_of(events: list[dict[str, Any]]) -> np.ndarray:
    """The agent's audio in a list of server events, as int16 samples."""
    pieces = [
        np.frombuffer(base64.b64decode(event["delta"]), dtype="<i2")
        for event in events
        if event["type"] == "response.output_audio.delta"
    ]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)


def assert_valid_server_events(events: list[dict[str, Any]]) -> None:
    for event in events:
        SERVER_EVENT.validate_python(event)


def show_tool_calls(agent_public_id: str, shown: str = "hosted") -> None:
    """Set how the agent's tool calls are shown to clients (a new agent version)."""
    from agents.models import Agent
    from agents.versions import save_agent

    agent = Agent.objects.get(public_id=agent_public_id)
    agent.tool_calls_shown = shown
    save_agent(agent)
