"""A call's control channel: its membership of the group ``call.<id>`` on the channel layer.

The group carries control messages only (an operator's "end call", a background tool's
result); audio never crosses the layer. So the layer (Redis) going away must not end a
call: receiving waits the outage out, and the call rejoins its group (lost when Redis
restarts) as soon as the layer answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from calls.metrics import LAYER_OUTAGES
from calls.models import EndReason

if TYPE_CHECKING:
    from agents.realtime.call import Call

logger = logging.getLogger("koe.realtime")

# Waiting out a channel-layer outage: the first retry, doubling up to the longest.
LAYER_RETRY_FIRST_SECONDS = 0.25
LAYER_RETRY_LONGEST_SECONDS = 2.0


class ControlChannel:
    def __init__(self, layer: Any, channel_name: str, log: Callable[..., None]) -> None:
        self.layer = layer
        self.channel_name = channel_name
        self.log = log
        self.group: str | None = None
        self.rejoin = False  # the layer failed: join the group again

    async def join(self, group: str) -> None:
        """Join ``group``; on failure, try again with the next receive (the call does not
        depend on it)."""
        self.group = group
        try:
            await self.layer.group_add(group, self.channel_name)
        except Exception as error:
            if not self.rejoin:
                self.log("could not join the call's group (%r); retrying", error)
            self.rejoin = True
            return
        if self.rejoin:
            self.log("rejoined the call's group")
        self.rejoin = False

    async def leave(self) -> None:
        group, self.group = self.group, None
        if group is not None:
            try:
                await self.layer.group_discard(group, self.channel_name)
            except Exception as error:  # it expires with the layer's group TTL
                logger.debug("could not leave %s: %r", group, error)

    async def receive(self) -> dict[str, Any]:
        """The next control message, waiting out an outage of the layer."""
        delay = LAYER_RETRY_FIRST_SECONDS
        while True:
            if self.rejoin and self.group is not None:
                await self.join(self.group)
            try:
                message: dict[str, Any] = await self.layer.receive(self.channel_name)
                return message
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not self.rejoin:
                    self.log("channel layer lost (%r); the call goes on", error)
                    LAYER_OUTAGES.inc()
                self.rejoin = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAYER_RETRY_LONGEST_SECONDS)


# The control messages a call follows, whatever its transport.
CONTROL_MESSAGES = frozenset(
    {
        "call.end",
        "tool.result",
        "sideband.attach",
        "sideband.detach",
        "sideband.client_event",
    }
)


async def follow(call: Call, layer: Any, message: dict[str, Any]) -> None:
    """One control message for ``call``: an end asked for from any process ({"type":
    "call.end", "reason", "detail"}), a background tool's result, a sideband's comings,
    goings and events (agents.realtime.sideband)."""
    kind = message.get("type")
    if kind == "call.end":
        reason = str(message.get("reason") or EndReason.OPERATOR)
        await call.end_by_request(reason, str(message.get("detail") or ""))
    elif kind == "tool.result":
        await call.tools.result(message)
    elif kind == "sideband.attach":
        await call.sideband.attach(str(message.get("channel", "")), layer.send)
    elif kind == "sideband.detach":
        call.sideband.detach(str(message.get("channel", "")))
    elif kind == "sideband.client_event":
        frame = message.get("frame")
        if isinstance(frame, str):
            await call.sideband.client_event(str(message.get("channel", "")), frame)
