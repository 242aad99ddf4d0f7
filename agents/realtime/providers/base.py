"""The provider interface: open a session, send client events, receive server events, close."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from agents.config import AgentConfig


class ProviderError(Exception):
    """The provider could not be reached or failed; the call ends with provider_error."""


@dataclass(frozen=True)
class ProviderCredentials:
    api_key: str
    endpoint: str = ""  # Azure: https://<resource>.openai.azure.com


class ProviderConnection(abc.ABC):
    """One live provider session. Frames are JSON text, exactly as the protocol sends them."""

    @abc.abstractmethod
    async def send(self, frame: str) -> None: ...

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[str]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class RealtimeProvider(abc.ABC):
    name: str

    @abc.abstractmethod
    async def connect(
        self, config: AgentConfig, credentials: ProviderCredentials | None
    ) -> ProviderConnection:
        """Open a session for an agent version's configuration."""


class WebSocketConnection(ProviderConnection):
    """A provider session over a WebSocket (OpenAI and Azure speak the same protocol)."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    async def send(self, frame: str) -> None:
        try:
            await self.socket.send(frame)
        except websockets.ConnectionClosed as error:
            raise ProviderError(f"The provider closed the connection ({error}).") from error

    async def _frames(self) -> AsyncIterator[str]:
        try:
            async for message in self.socket:
                yield message if isinstance(message, str) else message.decode(errors="replace")
        except websockets.ConnectionClosedError as error:
            raise ProviderError(f"The provider connection broke ({error}).") from error

    def __aiter__(self) -> AsyncIterator[str]:
        return self._frames()

    async def close(self) -> None:
        await self.socket.close()


class WebSocketProvider(RealtimeProvider):
    """Shared by the providers that speak the Realtime protocol over a WebSocket."""

    open_timeout = 10.0

    @abc.abstractmethod
    def address(
        self, config: AgentConfig, credentials: ProviderCredentials | None
    ) -> tuple[str, dict[str, str]]:
        """The URL and headers of the session."""

    async def connection_options(self, url: str) -> dict[str, Any]:
        """Extra options for opening the socket (where to connect, for a pinned address)."""
        return {}

    async def connect(
        self, config: AgentConfig, credentials: ProviderCredentials | None
    ) -> ProviderConnection:
        url, headers = self.address(config, credentials)
        try:
            options = await self.connection_options(url)
            socket = await connect(
                url,
                additional_headers=headers,
                open_timeout=self.open_timeout,
                max_size=None,
                compression=None,
                user_agent_header="Koe",
                **options,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake) as error:
            raise ProviderError(f"Could not reach {self.name} ({error}).") from error
        return WebSocketConnection(socket)
