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
from typing import Any

from calls.metrics import LAYER_OUTAGES

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
