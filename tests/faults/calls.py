"""Callers for the fault drills: WebSocket clients that talk to Koe the way a phone bridge
or a browser does, and keep count of what they heard."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.fakes.realtime_server import silence, tone

CHUNK_MS = 20
# One caller turn: half a second of "speech" (the fake's VAD hears a tone) and enough
# silence to end it; then the fake upstream answers.
TURN = tone(600) + silence(900)


def _chunks(audio: bytes) -> list[str]:
    size = 48 * CHUNK_MS
    return [
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(audio[i : i + size]).decode(),
            }
        )
        for i in range(0, len(audio), size)
    ]


@dataclass
class LiveCall:
    """One caller speaking turn after turn, in real time, until told to stop."""

    url: str
    secret: str
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: int = 0  # response.done events heard
    answers: list[str] = field(default_factory=list)  # what the agent said, turn by turn
    close_code: int | None = None
    socket: ClientConnection | None = None
    heard_response: asyncio.Event = field(default_factory=asyncio.Event)

    async def talk(self, stop: asyncio.Event) -> None:
        async with connect(
            self.url, additional_headers={"Authorization": f"Bearer {self.secret}"}, max_size=None
        ) as socket:
            self.socket = socket
            reader = asyncio.create_task(self._read(socket))
            try:
                frames = _chunks(TURN)
                while not stop.is_set() and not reader.done():
                    for frame in frames:
                        if stop.is_set() or reader.done():
                            break
                        with contextlib.suppress(ConnectionClosed):
                            await socket.send(frame)
                        await asyncio.sleep(CHUNK_MS / 1000)
            finally:
                if not reader.done():
                    await socket.close()
                await reader

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for frame in socket:
                event = json.loads(frame)
                self.events.append(event)
                if event["type"] == "response.done":
                    self.responses += 1
                    self.heard_response.set()
                elif event["type"] == "response.output_audio_transcript.done":
                    self.answers.append(event["transcript"])
        except ConnectionClosed:
            pass
        self.close_code = socket.close_code

    def errors(self) -> list[str]:
        return [event["error"]["code"] for event in self.events if event["type"] == "error"]

    async def wait_for_responses(self, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while self.responses < count:
                self.heard_response.clear()
                await self.heard_response.wait()
