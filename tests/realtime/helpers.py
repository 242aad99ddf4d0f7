"""Small async helpers for driving the realtime consumer in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from channels.testing import WebsocketCommunicator

from koe.asgi import application


async def connect(
    path: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
    timeout: float = 1,
) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, path, headers=headers or [], subprotocols=subprotocols
    )
    connected, _ = await communicator.connect(timeout=timeout)
    assert connected
    return communicator


async def receive(communicator: WebsocketCommunicator, timeout: float = 5) -> dict[str, Any]:
    return orjson.loads(await communicator.receive_from(timeout=timeout))


async def receive_until(
    communicator: WebsocketCommunicator, event_type: str
) -> list[dict[str, Any]]:
    seen = []
    while True:
        event = await receive(communicator)
        seen.append(event)
        if event["type"] == event_type:
            return seen


async def eventually(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


async def refused(communicator: WebsocketCommunicator) -> tuple[dict[str, Any], int]:
    """The error event a refused connection gets, and its close code."""
    event = await receive(communicator)
    closing = await communicator.receive_output(timeout=5)
    assert closing["type"] == "websocket.close"
    await communicator.disconnect()  # let the consumer finish, as the server would
    return event, closing.get("code", 1000)


def session_token(secret: str, agent_public_id: str) -> str:
    """A session token (ek_...) minted by the tenant's backend, as a browser gets it."""
    from django.test import Client

    response = Client().post(
        "/v1/realtime/client_secrets",
        {"session": {"type": "realtime", "model": agent_public_id}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200, response.content
    return str(response.json()["value"])
