"""What every WebSocket transport of a call shares: one Channels consumer per connection.

A transport (the OpenAI-protocol endpoint, a carrier's media stream) turns its wire
protocol into a ``Call``'s events and back. This base does the rest, once for all of them:
admitting the caller (refusals and outages answered, never a 500), opening the provider
session, the call's control channel (``call.<id>`` on the channel layer: an operator's
"end call", a background tool's result, surviving an outage of the layer), a fault in any
handler ending the call as ``server_error``, and the end when the caller goes away or the
server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch

from agents.realtime.access import AccessDenied, CallGrant
from agents.realtime.call import Call
from agents.realtime.control import ControlChannel, follow
from agents.realtime.errors import CLOSE_TRY_AGAIN, CLOSE_UNAVAILABLE
from agents.realtime.providers import ProviderError
from calls.load import LOAD
from calls.metrics import CALLS_REFUSED
from calls.models import EndReason
from foundation.call_threads import on_call_threads

logger = logging.getLogger("koe.realtime")

SERVER_UNAVAILABLE = "Calls cannot be set up right now; please try again in a moment."
PROVIDER_UNAVAILABLE = (
    "The agent is unavailable right now (its speech provider could not be reached)."
)


class CallConsumer(AsyncWebsocketConsumer):
    """A transport's consumer: subclasses say how frames are read (``frame``), how a caller
    is refused (``refuse``) and how the end reaches them (``ended``, of ``CallTransport``)."""

    call: Call | None = None
    refused = False  # frames racing a refusal are ignored
    holds_slot = False  # one of this process's call slots (calls.load), until the end
    # The end's detail when the caller's side closes the connection.
    closed_detail = "Client closed the connection ({code})."

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' AsyncConsumer.__call__, with control messages read through the
        call's ``ControlChannel``: the channel layer going away must not end a call."""
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.control = ControlChannel(self.channel_layer, self.channel_name, self.log)
        try:
            with contextlib.suppress(StopConsumer):
                await await_many_dispatch([receive, self.control.receive], self.dispatch)
        except asyncio.CancelledError:
            # Daphne cancels every application when it shuts down, and waits for them:
            # record the end and what the call produced before the process goes.
            if self.call is not None:
                await self.call.end(EndReason.SERVER_SHUTDOWN, "The server shut down.")
            raise
        finally:
            if self.holds_slot:
                self.holds_slot = False
                LOAD.release()

    # --- to be given by each transport ------------------------------------------------------
    async def frame(self, message: dict[str, Any]) -> None:
        """One ``websocket.receive`` message from the caller's side."""
        raise NotImplementedError

    async def refuse(
        self, message: str, code: str, error_type: str, close_code: int | None = None
    ) -> None:
        """Tell the caller's side why there is no call (as its protocol can) and close."""
        raise NotImplementedError

    async def deliver(self, frame: str) -> bool:
        """``CallTransport``: one server event (JSON text) for the caller."""
        raise NotImplementedError

    async def ended(self, reason: str, farewell: dict[str, Any] | None) -> None:
        """``CallTransport``: the call is over."""
        raise NotImplementedError

    async def admitted(self) -> None:
        """The call is about to start: accept the connection if it is not yet accepted."""

    # --- opening ----------------------------------------------------------------------------
    async def open_call(self, admit: Callable[[], CallGrant], what: str) -> Call | None:
        """Admit the caller (``admit`` runs on the call threads: it reads and writes the
        database), open the provider session and start the call; None when refused."""
        # This process's own capacity first: refusing costs nothing when it is overloaded.
        refusal = LOAD.admit()
        if refusal is not None:
            CALLS_REFUSED.labels(refusal.code).inc()
            logger.info("%s refused code=%s", what, refusal.code)
            await self.refuse(refusal.message, refusal.code, "server_error", CLOSE_TRY_AGAIN)
            return None
        self.holds_slot = True
        try:
            grant = await on_call_threads(admit)()
        except AccessDenied as denied:
            CALLS_REFUSED.labels(denied.code).inc()
            logger.info("%s refused code=%s", what, denied.code)
            await self.refuse(denied.message, denied.code, denied.error_type)
            return None
        except Exception:
            # The database (most likely) is away: refuse as documented, never a 500.
            logger.exception("%s set-up failed", what)
            CALLS_REFUSED.labels("server_unavailable").inc()
            await self.refuse(
                SERVER_UNAVAILABLE, "server_unavailable", "server_error", CLOSE_UNAVAILABLE
            )
            return None
        self.call = call = Call(grant, transport=self)
        try:
            await call.connect_provider()
        except ProviderError:
            await self.refuse(
                PROVIDER_UNAVAILABLE, "provider_unavailable", "server_error", CLOSE_UNAVAILABLE
            )
            return None
        await self.control.join(grant.group_name)
        await self.admitted()
        await call.start()
        return call

    # --- Channels ---------------------------------------------------------------------------
    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            # Channels runs close_old_connections() in a worker thread before every handler.
            # At 50 audio events a second per call that thread hop is most of the relay's
            # cost, and the call's own database work goes through its own threads
            # (foundation.call_threads), which look after their connections.
            if message["type"] != "websocket.receive":
                await super().dispatch(message)
            elif not self.refused:
                await self.frame(message)
        except StopConsumer:
            raise
        except Exception as error:
            # A bug anywhere (a provider, the tracker, the recorder) ends this call now,
            # recorded and closed, rather than leaving it active against the tenant's cap.
            if self.call is None or self.refused:
                logger.error("call set-up failed in %s", message.get("type"), exc_info=error)
                await self.refuse(
                    "An internal error ended the call.", "server_error", "server_error"
                )
            else:
                await self.call.fail(error, message.get("type", "?"))

    async def disconnect(self, code: int) -> None:
        if self.call is not None:
            await self.call.end(EndReason.CLIENT_CLOSED, self.closed_detail.format(code=code))

    # --- control messages (channel layer group call.<id>): see control.follow ---------------
    async def _control(self, message: dict[str, Any]) -> None:
        if self.call is not None:
            await follow(self.call, self.channel_layer, message)

    call_end = tool_result = _control
    sideband_attach = sideband_detach = sideband_client_event = _control

    # --- helpers ----------------------------------------------------------------------------
    async def close_quietly(self, code: int) -> None:
        try:
            await self.close(code=code)
        except Exception as error:  # the caller may be gone already: nothing left to do
            logger.debug("close failed tenant=%s call=%s: %r", *self.ids(), error)

    def log(self, message: str, *args: Any) -> None:
        logger.info(message + " tenant=%s call=%s", *args, *self.ids())

    def ids(self) -> tuple[str, str]:
        return self.call.ids() if self.call is not None else ("-", "-")
