"""Conformance client: openai-agents realtime agents (``agents.realtime``), against Koe.

Its RealtimeRunner sends its own session.update (model = the agent id, its instructions,
tracing) and runs every function call it sees as one of its tools: Koe must reconcile
the first and show its own tools as hosted calls. Prints one JSON object: what it saw.
Usage: python openai_agents.py <ws_url> <agent_id> <secret_key> <speech.pcm>
"""

from __future__ import annotations

import asyncio
import json
import sys

from agents.realtime import RealtimeAgent, RealtimeRunner

url, agent_id, secret, speech_path = sys.argv[1:5]
speech = open(speech_path, "rb").read()  # noqa: SIM115  (a short file, read once)
seen: dict[str, list] = {"types": [], "errors": [], "transcripts": [], "statuses": [], "notes": []}


async def until(events, predicate, timeout: float = 60):
    async with asyncio.timeout(timeout):
        async for event in events:
            if event.type == "error":
                seen["errors"].append(str(event.error))
            elif event.type == "tool_start":
                seen["notes"].append(f"ran a tool itself: {event.tool.name}")
            elif event.type == "raw_model_event" and event.data.type == "raw_server_event":
                data = event.data.data
                seen["types"].append(data["type"])
                if data["type"] == "error":
                    seen["errors"].append(data["error"])
                elif data["type"] == "response.output_audio_transcript.done":
                    seen["transcripts"].append(data["transcript"])
                elif data["type"] == "response.done":
                    seen["statuses"].append(data["response"]["status"])
                if predicate(data):
                    return data
    raise RuntimeError("the session ended")


async def main() -> None:
    agent = RealtimeAgent(name="Bistro caller", instructions="You help callers of a bistro.")
    runner = RealtimeRunner(agent, config={"model_settings": {"model_name": agent_id}})
    session = await runner.run(
        model_config={"api_key": secret, "url": f"{url}?model={agent_id}&consent=transcript"}
    )
    async with session:
        events = aiter(session)
        await session.send_message("When are you open?")
        await until(
            events,
            lambda e: e["type"] == "response.done" and "noon" in " ".join(seen["transcripts"]),
        )
        for start in range(0, len(speech), 1920):
            await session.send_audio(speech[start : start + 1920])
        await until(
            events,
            lambda e: (
                e["type"] == "response.output_audio_transcript.done" and "booked" in e["transcript"]
            ),
        )
        await until(events, lambda e: e["type"] == "response.done")
        # Its interrupt() stops playback and truncates what was heard (server VAD would
        # cancel the response itself when the caller speaks).
        await session.send_message("Is there parking nearby?")
        await until(events, lambda e: e["type"] == "response.output_audio.delta")
        await session.interrupt()
        await until(events, lambda e: e["type"] == "conversation.item.truncated")
    seen["notes"].append("closed")
    print(json.dumps(seen))


asyncio.run(main())
