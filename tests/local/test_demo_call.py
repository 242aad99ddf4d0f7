"""The demo restaurant, called through the broker's WebSocket endpoint with real speech.

The caller's words are synthesised by the local voice, streamed as 40 ms appends, and
everything downstream is real: the broker, the local provider (silero-vad, Whisper,
the scripted engine, Piper), the demo's booking tool, and the call's stored transcript.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pytest

from calls.models import CallSession, TranscriptItem
from dashboard.management.commands.seed_demo import seed_demo
from speech import stt
from speech.audio import PROTOCOL_RATE, SPEECH_RATE, resample, to_float
from tests.local.helpers import appends, assert_valid_server_events, show_tool_calls, utterance
from tests.realtime.helpers import connect, receive

pytestmark = pytest.mark.django_db(transaction=True)


async def until(communicator: Any, event_type: str, seen: list[dict[str, Any]]) -> None:
    while True:
        event = await receive(communicator, timeout=30)
        seen.append(event)
        if event["type"] == event_type:
            return


def agent_audio(events: list[dict[str, Any]], response_id: str) -> np.ndarray:
    return np.concatenate(
        [
            np.frombuffer(base64.b64decode(event["delta"]), dtype="<i2")
            for event in events
            if event["type"] == "response.output_audio.delta"
            and event["response_id"] == response_id
        ]
    )


def test_a_caller_books_a_table_by_voice_and_hears_the_confirmation() -> None:
    demo = seed_demo()
    show_tool_calls(demo["agent_id"], "hosted")

    async def scenario() -> list[dict[str, Any]]:
        communicator = await connect(
            f"/v1/realtime?model={demo['agent_id']}&consent=transcript",
            [(b"authorization", f"Bearer {demo['secret_key']}".encode())],
            timeout=30,  # the first call on a process loads the models
        )
        seen: list[dict[str, Any]] = []
        await until(communicator, "response.done", seen)  # the greeting
        for frame in appends(utterance("I'd like a table for two at seven.")):
            await communicator.send_to(text_data=frame)
        await until(communicator, "response.done", seen)  # the function call
        await until(communicator, "response.done", seen)  # the spoken result
        await communicator.disconnect()
        return seen

    seen = asyncio.run(scenario())
    assert_valid_server_events(seen)
    kinds = [event["type"] for event in seen]
    assert "error" not in kinds

    greeting = next(e for e in seen if e["type"] == "response.output_audio_transcript.done")
    assert greeting["transcript"].startswith("Hello, you've reached Koe Bistro")

    heard = next(e for e in seen if e["type"].endswith("input_audio_transcription.completed"))
    words = heard["transcript"].lower()
    assert "table for" in words and ("two" in words or "2" in words), words

    # Koe runs the agent's tool: this agent shows it as a hosted tool call, not a function.
    shown = next(
        e
        for e in seen
        if e["type"] == "response.output_item.added" and e["item"]["type"] == "mcp_call"
    )
    assert shown["item"]["name"] == "book_table"
    call = next(e for e in seen if e["type"] == "response.mcp_call_arguments.done")
    assert json.loads(call["arguments"]) == {"party_size": 2, "time": "19:00"}
    assert any(e["type"] == "response.mcp_call.completed" for e in seen)

    final = [e["response"] for e in seen if e["type"] == "response.done"][-1]
    assert final["status"] == "completed"
    spoken = final["output"][0]["content"][0]["transcript"]
    assert "Your table for 2 at 19:00 is booked" in spoken
    # What the caller hears says so too: Whisper, listening to the agent's audio.
    audio = agent_audio(seen, final["id"])
    assert len(audio) / PROTOCOL_RATE > 1.5
    back = stt.transcribe(resample(to_float(audio), PROTOCOL_RATE, SPEECH_RATE)).lower()
    # (the agent's voice varies a little each time: "booked" is sometimes heard as "book")
    assert "table for" in back and "book" in back, back

    # The call's record: what was said, the tool and its result, in order.
    session = CallSession.objects.get(public_id__isnull=False)
    rows = list(TranscriptItem.objects.filter(call=session).order_by("sequence"))
    assert [row.role for row in rows] == ["assistant", "user", "tool", "tool", "assistant"]
    assert rows[2].tool_name == "book_table"
    assert "booked" in rows[3].text
    assert session.turn_count == 1
