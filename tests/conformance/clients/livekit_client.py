"""Conformance client: LiveKit Agents' OpenAI realtime plugin (``livekit-plugins-openai``),
against Koe, standalone: no LiveKit room, server or job, only the plugin's RealtimeModel
and its RealtimeSession, driven the way LiveKit's AgentSession drives them.

Outside a job the model opens an aiohttp session of its own (``utils.http_context`` has
none), so nothing needs setting up. Its base URL keeps a query string (the plugin only
adds ``model=``), so the caller's consent rides on it.

What the plugin sends: a session.update of its own (semantic VAD, a transcription model,
``"tracing": null``); every message as ``conversation.item.create`` with an id it chose and
the ``previous_item_id`` of its chat context mirror, awaiting ``conversation.item.added``;
every ``response.create`` with ``"instructions": null`` and ``metadata.client_event_id``,
which must come back in ``response.created`` for ``generate_reply()`` to be answered
(after 10 s it gives up, and counts a response as still coming). On a barge-in it cancels
the response if one is in progress and truncates the message where playback stopped.

Prints one JSON object: what it saw ("types", "errors", "transcripts", "statuses" from the
raw server events; "errors" also gets the plugin's own ``error`` events; "notes").
Usage: python livekit_client.py <http_base> <agent_id> <secret_key> <speech.pcm>
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import llm
from livekit.plugins.openai.realtime import RealtimeModel, RealtimeSession

base, agent_id, secret, speech_path = sys.argv[1:5]
speech = open(speech_path, "rb").read()  # noqa: SIM115  (a short file, read once)
seen: dict[str, list] = {"types": [], "errors": [], "transcripts": [], "statuses": [], "notes": []}
RATE = 24000
FRAME_BYTES = RATE * 40 // 1000 * 2  # 40 ms of 24 kHz mono PCM16


class Listener:
    """What an AgentSession hears: the server's events as the plugin receives them, and
    each generation's messages (their text, and how much audio a player was given)."""

    def __init__(self) -> None:
        self.events = asyncio.Queue[dict[str, Any]]()
        self.audio_ms: dict[str, float] = {}  # by message id
        self.tasks: set[asyncio.Task] = set()

    def server_event(self, event: dict[str, Any]) -> None:
        seen["types"].append(event["type"])
        if event["type"] == "error":
            seen["errors"].append(event["error"])
        elif event["type"] == "response.output_audio_transcript.done":
            seen["transcripts"].append(event["transcript"])
        elif event["type"] == "response.done":
            seen["statuses"].append(event["response"]["status"])
        self.events.put_nowait(event)

    def error(self, error: llm.RealtimeModelError) -> None:
        seen["errors"].append(f"{type(error.error).__name__}: {error.error}")

    def generation_created(self, generation: llm.GenerationCreatedEvent) -> None:
        task = asyncio.create_task(self._play(generation))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _play(self, generation: llm.GenerationCreatedEvent) -> None:
        async def functions() -> None:
            async for call in generation.function_stream:
                seen["types"].append("function_call")
                seen["notes"].append(f"asked to run a function: {call.name}")

        async def text(message: llm.MessageGeneration) -> None:
            async for _ in message.text_stream:
                pass

        async def audio(message: llm.MessageGeneration) -> None:
            self.audio_ms[message.message_id] = 0.0
            async for frame in message.audio_stream:
                self.audio_ms[message.message_id] += frame.duration * 1000

        calls = asyncio.create_task(functions())
        async for message in generation.message_stream:
            await asyncio.gather(text(message), audio(message))
        await calls

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if predicate(event):
                    return event

    async def until_all(self, types: set[str], timeout: float = 60) -> None:
        """Waits for each of these event types, in whatever order they come."""
        awaited = set(types)
        async with asyncio.timeout(timeout):
            while awaited:
                awaited.discard((await self.events.get())["type"])


async def ask(session: RealtimeSession, text: str, replies: list[asyncio.Future]) -> None:
    """A typed turn as AgentSession takes one: the user's message into the chat context,
    then generate_reply(). Its future is noted when it settles, not awaited: the turn goes
    on by the server's events either way."""
    chat_ctx = session.chat_ctx.copy()
    chat_ctx.add_message(role="user", content=text)
    await session.update_chat_ctx(chat_ctx)
    reply = session.generate_reply()

    def settled(reply: asyncio.Future[llm.GenerationCreatedEvent]) -> None:
        if reply.cancelled():
            seen["notes"].append("generate_reply cancelled")
        elif reply.exception() is not None:
            seen["notes"].append(f"generate_reply failed: {reply.exception()}")
        else:
            seen["notes"].append("generate_reply answered")

    reply.add_done_callback(settled)
    replies.append(reply)


async def main() -> None:
    model = RealtimeModel(
        base_url=f"{base}/v1/realtime?consent=transcript", api_key=secret, model=agent_id
    )
    session = model.session()
    listener = Listener()
    session.on("openai_server_event_received", listener.server_event)
    session.on("error", listener.error)
    session.on("generation_created", listener.generation_created)
    session.on("input_speech_started", lambda _: seen["notes"].append("speech started"))
    replies: list[asyncio.Future] = []
    try:
        # The agent greets API callers: a generation nobody asked for, played to its end.
        await listener.until(lambda e: e["type"] == "response.done")

        # 1. A typed turn.
        await ask(session, "When are you open?", replies)
        await listener.until(
            lambda e: e["type"] == "response.done" and "noon" in " ".join(seen["transcripts"])
        )

        # 2. A spoken turn, as a room's microphone track brings it: 40 ms frames.
        for start in range(0, len(speech), FRAME_BYTES):
            chunk = speech[start : start + FRAME_BYTES]
            session.push_audio(rtc.AudioFrame(chunk, RATE, 1, len(chunk) // 2))
            await asyncio.sleep(0.002)
        await listener.until(
            lambda e: (
                e["type"] == "response.output_audio_transcript.done" and "booked" in e["transcript"]
            )
        )
        await listener.until(lambda e: e["type"] == "response.done")

        # 3. The caller barges in on the next reply, as AgentSession handles it: interrupt()
        #    (response.cancel, if a response is still in progress), then truncate() where
        #    the player stopped.
        await ask(session, "Is there parking nearby?", replies)
        delta = await listener.until(lambda e: e["type"] == "response.output_audio.delta")
        await asyncio.sleep(0.05)  # the first frames reach the player
        played = max(1, min(200, int(listener.audio_ms.get(delta["item_id"], 0))))
        session.interrupt()
        session.truncate(
            message_id=delta["item_id"], modalities=["audio", "text"], audio_end_ms=played
        )
        seen["notes"].append(f"interrupted after {played} ms")
        await listener.until_all({"conversation.item.truncated", "response.done"})
        # generate_reply()'s futures settle (the plugin gives up on one after 10 s).
        await asyncio.wait(replies, timeout=12)
    finally:
        await session.aclose()
        await model.aclose()
    seen["notes"].append("closed")
    print(json.dumps(seen))


asyncio.run(main())
