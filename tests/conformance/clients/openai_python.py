"""Conformance client: the official ``openai`` Python SDK, as its docs show it, against Koe.

Runs the scenario (see ../scenario.md) and prints one JSON object: what it saw.
Usage: python openai_python.py <base_url> <agent_id> <secret_key> <speech.pcm>
"""

from __future__ import annotations

import base64
import json
import sys
import time

from openai import OpenAI

base_url, agent_id, secret, speech_path = sys.argv[1:5]
speech = open(speech_path, "rb").read()  # noqa: SIM115  (a short file, read once)
seen: dict[str, list] = {"types": [], "errors": [], "transcripts": [], "statuses": [], "notes": []}


def record(event) -> None:
    seen["types"].append(event.type)
    if event.type == "error":
        seen["errors"].append(event.error.model_dump())
    elif event.type == "response.output_audio_transcript.done":
        seen["transcripts"].append(event.transcript)
    elif event.type == "response.done":
        seen["statuses"].append(event.response.status)


def until(connection, predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    for event in connection:
        record(event)
        if predicate(event):
            return event
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s; saw {seen['types'][-10:]}")
    raise RuntimeError("the connection closed")


client = OpenAI(api_key=secret, base_url=base_url)
with client.realtime.connect(model=agent_id, extra_query={"consent": "transcript"}) as connection:
    # 1. A typed question (while the agent may still be greeting: it waits its turn).
    connection.conversation.item.create(
        item={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "When are you open?"}],
        }
    )
    connection.response.create()
    until(
        connection,
        lambda e: e.type == "response.output_audio_transcript.done" and "noon" in e.transcript,
    )
    until(connection, lambda e: e.type == "response.done")
    # 2. A spoken request: 24 kHz PCM16 in 40 ms chunks, as a microphone sends it.
    for start in range(0, len(speech), 1920):
        connection.input_audio_buffer.append(
            audio=base64.b64encode(speech[start : start + 1920]).decode()
        )
    booked = until(
        connection,
        lambda e: e.type == "response.output_audio_transcript.done" and "booked" in e.transcript,
    )
    until(connection, lambda e: e.type == "response.done")
    # 3. Cut the agent short: cancel a response as it starts, and truncate the booking's
    #    confirmation where a player would have stopped it.
    connection.conversation.item.truncate(item_id=booked.item_id, content_index=0, audio_end_ms=300)
    until(connection, lambda e: e.type == "conversation.item.truncated")
    connection.conversation.item.create(
        item={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Is there parking nearby?"}],
        }
    )
    connection.response.create()
    until(connection, lambda e: e.type == "response.created")
    connection.response.cancel()
    until(connection, lambda e: e.type == "response.done")
seen["notes"].append("closed")
print(json.dumps(seen))
