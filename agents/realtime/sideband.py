"""The sideband: a tenant's server joins a live call over ``/v1/realtime?call_id=<id>``.

As on OpenAI's Realtime API, the tenant's server (its secret key; browsers' session tokens
are refused) receives the call's server events, from when it joins, and sends events of
its own: update what the agent allows (``session.update``), answer the functions it
declared (``conversation.item.create`` with a ``function_call_output``), ask for a
response, end the call (``session.close``, Koe's own, or ``POST
/v1/realtime/calls/{id}/hangup``). Its events go through the call's policy as a server's
with the secret key would (the agent's overrides and client functions for servers).

The call may live on another process: the sideband's consumer and the call talk over the
channel layer (``sideband.attach``/``.detach``/``.client_event`` to the call's group,
``sideband.event``/``.ended`` back to the sideband's channel). The agent's audio does not
cross it (its deltas are left out, as the layer carries control messages only).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from agents.realtime import events
from agents.realtime.errors import (
    CLOSE_AUTHENTICATION,
    CLOSE_INVALID_REQUEST,
    CLOSE_NORMAL,
    error_event,
)
from agents.realtime.handshake import caller_from_scope
from calls.models import CallSession, CallStatus
from foundation.call_threads import on_call_threads
from tenancy.models import ApiKey

if TYPE_CHECKING:
    from agents.realtime.call import Call

logger = logging.getLogger("koe.realtime")

SESSION_CLOSE = "session.close"  # Koe's: the tenant's server ends the call
# Not for the sideband: the agent's audio (large, 50 a second) stays off the layer.
NOT_FORWARDED = frozenset({events.OUTPUT_AUDIO_DELTA})
MAX_SIDEBANDS = 4

Send = Callable[[str, dict[str, Any]], Awaitable[None]]


class CallSideband:
    """The call's side: the sidebands attached to it, by their channel on the layer."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.channels: set[str] = set()
        self.send: Send | None = None  # the layer's send, given by the call's transport

    async def attach(self, channel: str, send: Send) -> None:
        self.send = send
        if len(self.channels) >= MAX_SIDEBANDS and channel not in self.channels:
            event = error_event(
                f"At most {MAX_SIDEBANDS} servers may join one call.", "too_many_sidebands"
            )
            await self._send(channel, {"type": "sideband.event", "frame": _text(event)})
            await self._send(channel, {"type": "sideband.ended"})
            return
        self.channels.add(channel)
        self.call.log("a sideband joined the call")

    def detach(self, channel: str) -> None:
        self.channels.discard(channel)

    async def forward(self, event: dict[str, Any], frame: str) -> None:
        """One of the provider's events, as the tenant's server sees it (unredacted)."""
        if event.get("type") in NOT_FORWARDED:
            return
        for channel in list(self.channels):
            await self._send(channel, {"type": "sideband.event", "frame": frame})

    async def client_event(self, channel: str, frame: str) -> None:
        """An event from an attached sideband, through the policy as a server's."""
        call = self.call
        if channel not in self.channels:
            return
        if SESSION_CLOSE in frame and _type_of(frame) == SESSION_CLOSE:
            await call.end_by_request("operator", "Ended by the tenant's server (sideband).")
            return
        grant = call.grant
        config = call.config
        policy = dataclasses.replace(
            call.policy,
            allow_overrides=config.client_may_override,
            client_functions=config.client_functions in ("all", "servers"),
            strict=grant.strict,
        )

        async def reply(event: dict[str, Any]) -> None:
            await self._send(channel, {"type": "sideband.event", "frame": _text(event)})

        await call.client_frame(frame, policy=policy, reply=reply)

    async def ended(self) -> None:
        for channel in list(self.channels):
            await self._send(channel, {"type": "sideband.ended"})
        self.channels.clear()

    async def _send(self, channel: str, message: dict[str, Any]) -> None:
        if self.send is None:
            return
        try:
            await self.send(channel, message)
        except Exception as error:  # a full or absent channel: that sideband misses it
            logger.debug("sideband send failed: %r", error)
            if message["type"] == "sideband.ended":
                self.channels.discard(channel)


class SidebandConsumer(AsyncWebsocketConsumer):
    """The tenant's server's end of a sideband (``/v1/realtime?call_id=``)."""

    call_group = ""
    attached = False

    async def connect(self) -> None:
        caller = caller_from_scope(self.scope)
        query = parse_qs(self.scope.get("query_string", b"").decode())
        call_id = (query.get("call_id") or [""])[-1]
        await self.accept()
        refusal = await on_call_threads(_refusal)(caller.secret, call_id)
        if refusal is not None:
            message, code, close_code = refusal
            await self.send(text_data=_text(error_event(message, code)))
            await self.close(code=close_code)
            return
        self.call_group = f"call.{call_id}"
        await self.channel_layer.group_send(
            self.call_group, {"type": "sideband.attach", "channel": self.channel_name}
        )
        self.attached = True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.attached:
            return
        if text_data is None or len(text_data) * 4 > settings.KOE_REALTIME_MAX_FRAME_BYTES:
            event = error_event("Send one JSON event per text message.", "invalid_frame")
            await self.send(text_data=_text(event))
            return
        await self.channel_layer.group_send(
            self.call_group,
            {"type": "sideband.client_event", "channel": self.channel_name, "frame": text_data},
        )

    async def disconnect(self, code: int) -> None:
        if self.attached:
            self.attached = False
            try:
                await self.channel_layer.group_send(
                    self.call_group, {"type": "sideband.detach", "channel": self.channel_name}
                )
            except Exception as error:  # the call forgets it when it ends anyway
                logger.debug("sideband detach failed: %r", error)

    # --- from the call --------------------------------------------------------------------
    async def sideband_event(self, message: dict[str, Any]) -> None:
        await self.send(text_data=message["frame"])

    async def sideband_ended(self, message: dict[str, Any]) -> None:
        self.attached = False
        await self.close(code=CLOSE_NORMAL)


def _refusal(secret: str, call_id: str) -> tuple[str, str, int] | None:
    if not secret or secret.startswith("ek_"):
        return (
            "Join a call with your secret key ('Authorization: Bearer sk_...').",
            "missing_api_key",
            CLOSE_AUTHENTICATION,
        )
    key = ApiKey.authenticate(secret)
    if key is None:
        return "Invalid API key: unknown or revoked.", "invalid_api_key", CLOSE_AUTHENTICATION
    call = CallSession.objects.filter(tenant=key.tenant, public_id=call_id).first()
    if call is None:
        return f"No call {call_id!r} in this tenant.", "call_not_found", CLOSE_INVALID_REQUEST
    if call.status != CallStatus.ACTIVE:
        return "This call has ended.", "call_ended", CLOSE_INVALID_REQUEST
    return None


def _text(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


def _type_of(frame: str) -> str:
    try:
        value = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return ""
    return str(value.get("type", "")) if isinstance(value, dict) else ""


def wants_sideband(scope: dict[str, Any]) -> bool:
    return "call_id" in parse_qs(scope.get("query_string", b"").decode())
