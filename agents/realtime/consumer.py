"""The OpenAI-protocol WebSocket transport: ``/v1/realtime?model=<agent>``.

It authenticates the caller the way OpenAI's clients present keys (``handshake``), refuses
with a readable error event when it must, and otherwise hands the connection to a
``Call`` (the call core, ``agents.realtime.call``): frames from the client go to
``Call.client_frame`` unchanged, and the call's events come back through ``deliver``.
What all transports share (admission, the control channel, faults, the end) is
``CallConsumer``'s.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from agents.realtime.access import open_call
from agents.realtime.errors import (
    CLOSE_CODES,
    CLOSE_NORMAL,
    CLOSE_PROVIDER_ERROR,
    CLOSE_SERVER_ERROR,
    error_event,
)
from agents.realtime.handshake import caller_from_scope, chosen_subprotocol
from agents.realtime.transport import CallConsumer
from calls.models import EndReason
from foundation.frames import OVERSIZED

logger = logging.getLogger("koe.realtime")

# How a call that ends for each reason is closed (anything else: 1000).
END_CLOSE_CODES: dict[str, int] = {
    EndReason.PROVIDER_ERROR: CLOSE_PROVIDER_ERROR,
    EndReason.SERVER_ERROR: CLOSE_SERVER_ERROR,
}


class RealtimeConsumer(CallConsumer):
    accepted = False

    async def connect(self) -> None:
        caller = caller_from_scope(self.scope)
        await self.open_call(lambda: open_call(caller), f"realtime agent={caller.agent_id}")

    async def frame(self, message: dict[str, Any]) -> None:
        if self.call is None:
            return
        if OVERSIZED in message:  # koe.server read past a frame over the limit
            await self.call.oversized_frame(message[OVERSIZED])
        else:
            text = message.get("text")
            await self.call.client_frame(text if text is not None else message["bytes"])

    async def admitted(self) -> None:
        await self._accept()

    # --- CallTransport -------------------------------------------------------------------
    async def deliver(self, frame: str) -> bool:
        """Send one frame to the client; False when the client is gone."""
        try:
            await self.send(text_data=frame)
        except Exception as error:
            logger.debug("send failed tenant=%s call=%s: %r", *self.ids(), error)
            return False
        return True

    async def ended(self, reason: str, farewell: dict[str, Any] | None) -> None:
        await self.control.leave()
        if reason == EndReason.CLIENT_CLOSED:
            return
        if farewell is not None:
            await self._accept()  # ended while connecting: the client must still hear why
            await self.deliver(orjson.dumps(farewell).decode())
        await self.close_quietly(END_CLOSE_CODES.get(reason, CLOSE_NORMAL))

    # --- refusing --------------------------------------------------------------------------
    async def refuse(
        self, message: str, code: str, error_type: str, close_code: int | None = None
    ) -> None:
        self.refused = True
        # Accept first so the client can read why (a rejected handshake has no body).
        await self._accept()
        await self.deliver(orjson.dumps(error_event(message, code, error_type=error_type)).decode())
        await self.close_quietly(close_code or CLOSE_CODES.get(error_type, CLOSE_SERVER_ERROR))

    async def _accept(self) -> None:
        if not self.accepted:
            self.accepted = True
            await self.accept(subprotocol=chosen_subprotocol(self.scope))
