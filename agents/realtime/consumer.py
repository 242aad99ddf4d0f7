"""The OpenAI-protocol WebSocket transport: one Channels consumer per connection.

It authenticates the caller, refuses with a readable error event when it must, and
otherwise hands the connection to a ``Call`` (the call core, ``agents.realtime.call``):
frames from the client go to ``Call.client_frame``, and the call sends its events back
through this consumer as its ``CallTransport``. The call's group ``call.<id>`` on the
channel layer carries only control messages (an operator's "end call", a background
tool's result), through a ``ControlChannel`` that survives an outage of the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch

from agents.realtime.access import AccessDenied, open_call
from agents.realtime.call import Call
from agents.realtime.control import ControlChannel
from agents.realtime.errors import (
    CLOSE_CODES,
    CLOSE_NORMAL,
    CLOSE_PROVIDER_ERROR,
    CLOSE_SERVER_ERROR,
    CLOSE_UNAVAILABLE,
    error_event,
)
from agents.realtime.handshake import caller_from_scope, chosen_subprotocol
from agents.realtime.providers import ProviderError
from calls.metrics import CALLS_REFUSED
from calls.models import EndReason
from foundation.call_threads import on_call_threads
from foundation.frames import OVERSIZED

logger = logging.getLogger("koe.realtime")

# How a call that ends for each reason is closed (anything else: 1000).
END_CLOSE_CODES: dict[str, int] = {
    EndReason.PROVIDER_ERROR: CLOSE_PROVIDER_ERROR,
    EndReason.SERVER_ERROR: CLOSE_SERVER_ERROR,
}


class RealtimeConsumer(AsyncWebsocketConsumer):
    call: Call | None = None
    accepted = False
    refused = False  # frames racing a refusal are ignored

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' AsyncConsumer.__call__, with control messages read through the
        call's ``ControlChannel``: the channel layer going away must not end a call."""
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.control = ControlChannel(self.channel_layer, self.channel_name, self._log)
        try:
            with contextlib.suppress(StopConsumer):
                await await_many_dispatch([receive, self.control.receive], self.dispatch)
        except asyncio.CancelledError:
            # Daphne cancels every application when it shuts down, and waits for them:
            # record the end and what the call produced before the process goes.
            if self.call is not None:
                await self.call.end(EndReason.SERVER_SHUTDOWN, "The server shut down.")
            raise

    async def connect(self) -> None:
        caller = caller_from_scope(self.scope)
        try:
            grant = await on_call_threads(open_call)(caller)
        except AccessDenied as denied:
            CALLS_REFUSED.labels(denied.code).inc()
            logger.info("realtime refused code=%s agent=%s", denied.code, caller.agent_id)
            await self._refuse(denied.message, denied.code, denied.error_type)
            return
        except Exception:
            # The database (most likely) is away: refuse as documented, never a 500.
            logger.exception("realtime set-up failed agent=%s", caller.agent_id)
            CALLS_REFUSED.labels("server_unavailable").inc()
            message = "Calls cannot be set up right now; please try again in a moment."
            await self._refuse(message, "server_unavailable", "server_error", CLOSE_UNAVAILABLE)
            return
        self.call = call = Call(grant, transport=self)
        try:
            await call.connect_provider()
        except ProviderError:
            message = (
                "The agent is unavailable right now (its speech provider could not be reached)."
            )
            await self._refuse(message, "provider_unavailable", "server_error", CLOSE_UNAVAILABLE)
            return
        await self.control.join(grant.group_name)
        await self._accept()
        await call.start()

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            # Channels runs close_old_connections() in a worker thread before every handler.
            # At 50 audio events a second per call that thread hop is most of the relay's
            # cost, and the call's own database work goes through its own threads
            # (foundation.call_threads), which look after their connections.
            if message["type"] != "websocket.receive":
                await super().dispatch(message)
            elif self.call is not None and not self.refused:
                if OVERSIZED in message:  # koe.server read past a frame over the limit
                    await self.call.oversized_frame(message[OVERSIZED])
                else:
                    text = message.get("text")
                    await self.call.client_frame(text if text is not None else message["bytes"])
        except StopConsumer:
            raise
        except Exception as error:
            # A bug anywhere (a provider, the tracker, the recorder) ends this call now,
            # recorded and closed, rather than leaving it active against the tenant's cap.
            if self.call is None or self.refused:
                logger.error("realtime set-up failed in %s", message.get("type"), exc_info=error)
                ending = "An internal error ended the call."
                await self._refuse(ending, "server_error", "server_error")
            else:
                await self.call.fail(error, message.get("type", "?"))

    async def disconnect(self, code: int) -> None:
        if self.call is not None:
            await self.call.end(EndReason.CLIENT_CLOSED, f"Client closed the connection ({code}).")

    # --- control messages (channel layer group call.<id>) ---------------------------------
    async def call_end(self, message: dict[str, Any]) -> None:
        """{"type": "call.end", "reason": ..., "detail": ...} from any process."""
        if self.call is not None:
            reason = str(message.get("reason") or EndReason.OPERATOR)
            await self.call.end_by_request(reason, str(message.get("detail") or ""))

    async def tool_result(self, message: dict[str, Any]) -> None:
        """{"type": "tool.result", ...} from a Celery worker: a background tool's output."""
        if self.call is not None:
            await self.call.tools.result(message)

    # --- CallTransport -------------------------------------------------------------------
    async def deliver(self, frame: str) -> bool:
        """Send one frame to the client; False when the client is gone."""
        try:
            await self.send(text_data=frame)
        except Exception as error:
            logger.debug("send failed tenant=%s call=%s: %r", *self._ids(), error)
            return False
        return True

    async def ended(self, reason: str, farewell: dict[str, Any] | None) -> None:
        await self.control.leave()
        if reason == EndReason.CLIENT_CLOSED:
            return
        if farewell is not None:
            await self._accept()  # ended while connecting: the client must still hear why
            await self.deliver(orjson.dumps(farewell).decode())
        await self._close(END_CLOSE_CODES.get(reason, CLOSE_NORMAL))

    # --- helpers -------------------------------------------------------------------------
    async def _refuse(
        self, message: str, code: str, error_type: str, close_code: int | None = None
    ) -> None:
        self.refused = True
        # Accept first so the client can read why (a rejected handshake has no body).
        await self._accept()
        await self.deliver(orjson.dumps(error_event(message, code, error_type=error_type)).decode())
        await self._close(close_code or CLOSE_CODES.get(error_type, CLOSE_SERVER_ERROR))

    async def _accept(self) -> None:
        if not self.accepted:
            self.accepted = True
            await self.accept(subprotocol=chosen_subprotocol(self.scope))

    async def _close(self, code: int) -> None:
        try:
            await self.close(code=code)
        except Exception as error:  # the client may be gone already: nothing left to do
            logger.debug("close failed tenant=%s call=%s: %r", *self._ids(), error)

    def _log(self, message: str, *args: Any) -> None:
        logger.info(message + " tenant=%s call=%s", *args, *self._ids())

    def _ids(self) -> tuple[str, str]:
        return self.call.ids() if self.call is not None else ("-", "-")
