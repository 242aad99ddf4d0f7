"""Test doubles for the broker: an in-memory provider scripted by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from agents.realtime.providers import ProviderConnection, ProviderCredentials, RealtimeProvider


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
    connections: list[ScriptedConnection] = []
    responder: Callable[[dict[str, Any], ScriptedConnection], None] | None = None
    configs: list[dict[str, Any]] = []

    async def connect(
        self, config: dict[str, Any], credentials: ProviderCredentials | None
    ) -> ProviderConnection:
        connection = ScriptedConnection(type(self).responder)
        type(self).connections.append(connection)
        type(self).configs.append(config)
        connection.push({"type": "session.created", "event_id": "event_1", "session": {}})
        return connection
