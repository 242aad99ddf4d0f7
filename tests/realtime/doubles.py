"""Test doubles for the broker: an in-memory provider scripted by the test."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from agents.config import AgentConfig
from agents.realtime.providers import (
    ProviderConnection,
    ProviderCredentials,
    ProviderError,
    RealtimeProvider,
)


def usage(total: int = 30) -> dict[str, Any]:
    """A response's usage, in the API's shape."""
    return {
        "total_tokens": total,
        "input_tokens": 20,
        "output_tokens": total - 20,
        "input_token_details": {
            "text_tokens": 5,
            "audio_tokens": 15,
            "image_tokens": 0,
            "cached_tokens": 4,
            "cached_tokens_details": {"text_tokens": 4, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": 2, "audio_tokens": total - 22},
    }


class ScriptedConnection(ProviderConnection):
    """Records what the broker sends; the test (or a responder) pushes server events."""

    def __init__(self, responder: Callable[[dict[str, Any], ScriptedConnection], None] | None):
        self.sent: list[dict[str, Any]] = []
        self.raw_sent: list[str] = []
        self.incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False
        self.responder = responder

    def push(self, event: dict[str, Any]) -> None:
        self.incoming.put_nowait(orjson.dumps(event).decode())

    def call_function(
        self, name: str, arguments: str, *, call_id: str = "call_fc", response_id: str = "resp_fc"
    ) -> None:
        """The model answers with one function call (a whole response)."""
        self.push({"type": "response.created", "response": {"id": response_id}})
        self.push(
            {
                "type": "response.done",
                "response": {
                    "id": response_id,
                    "status": "completed",
                    "usage": usage(),
                    "output": [
                        {
                            "id": f"item_{call_id}",
                            "type": "function_call",
                            "call_id": call_id,
                            "name": name,
                            "arguments": arguments,
                        }
                    ],
                },
            }
        )

    def speak(self, response_id: str, text: str = "", seconds: float = 0.0) -> None:
        """The model answers in speech: ``seconds`` of (silent) audio and its transcript."""
        self.push({"type": "response.created", "response": {"id": response_id}})
        if seconds:
            audio = base64.b64encode(bytes(int(48000 * seconds))).decode()
            self.push(
                {"type": "response.output_audio.delta", "response_id": response_id, "delta": audio}
            )
        if text:
            self.push(
                {
                    "type": "response.output_audio_transcript.done",
                    "item_id": f"item_{response_id}",
                    "transcript": text,
                }
            )
        self.push(
            {
                "type": "response.done",
                "response": {
                    "id": response_id,
                    "status": "completed",
                    "output": [],
                    "usage": usage(),
                },
            }
        )

    def hang_up(self) -> None:
        self.incoming.put_nowait(None)

    async def send(self, frame: str) -> None:
        self.raw_sent.append(frame)
        event = orjson.loads(frame)
        self.sent.append(event)
        if self.responder is not None:
            self.responder(event, self)

    async def _frames(self) -> AsyncIterator[str]:
        while True:
            frame = await self.incoming.get()
            if frame is None:
                return
            yield frame

    def __aiter__(self) -> AsyncIterator[str]:
        return self._frames()

    async def close(self) -> None:
        self.closed = True
        self.incoming.put_nowait(None)


class ScriptedProvider(RealtimeProvider):
    name = "scripted"
    connection_class: type[ScriptedConnection] = ScriptedConnection
    connections: list[ScriptedConnection] = []
    responder: Callable[[dict[str, Any], ScriptedConnection], None] | None = None
    configs: list[AgentConfig] = []
    # Sessions it opens before it is unreachable: a provider that hangs up and cannot be
    # reached again (so the call cannot renew its session). None: always reachable.
    reachable_for: int | None = None

    async def connect(
        self, config: AgentConfig, credentials: ProviderCredentials | None
    ) -> ProviderConnection:
        limit = type(self).reachable_for
        if limit is not None and len(type(self).connections) >= limit:
            raise ProviderError("The scripted provider is unreachable.")
        connection = type(self).connection_class(type(self).responder)
        type(self).connections.append(connection)
        type(self).configs.append(config)
        connection.push({"type": "session.created", "event_id": "event_1", "session": {}})
        return connection
