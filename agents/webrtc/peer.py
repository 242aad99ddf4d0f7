"""The WebRTC transport of a call: one aiortc peer connection per caller.

A ``PeerCall`` is what ``CallConsumer`` is for WebSockets, without a consumer: it owns the
peer connection and the ``Call`` on it, from the answer to the end. The caller's Opus goes
to the call as caller audio (``audio.caller_audio``); the data channel ``oai-events``
carries the call's JSON events both ways, exactly the WebSocket's (the same policy,
presentation and errors); the agent's audio plays on ``AgentVoice``. The call starts when
the data channel opens (or the media connects, for a caller without one); a caller who
never connects is given ``CONNECT_SECONDS``. It joins its group on the channel layer, so
an operator's "end call", a hang-up through the API, and background tools' results reach
it from any process, and it holds one of this process's call slots until it ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
from collections import deque
from typing import Any

import orjson
from aiortc import RTCDataChannel, RTCPeerConnection
from channels.layers import get_channel_layer

from agents.realtime import events
from agents.realtime.call import Call
from agents.realtime.control import ControlChannel, follow
from agents.realtime.errors import error_event
from agents.webrtc.audio import AgentVoice, caller_audio
from agents.webrtc.quality import media_quality
from calls.load import LOAD
from calls.models import CallSession, EndReason
from foundation.call_threads import on_call_threads

logger = logging.getLogger("koe.webrtc")

EVENTS_CHANNEL = "oai-events"
# A caller whose connection does not come up in this long after the answer is let go.
CONNECT_SECONDS = 20.0
# Events for a data channel that is not open yet (session.created, the greeting's).
PENDING_EVENTS_KEPT = 500
# The caller's events waiting to be taken (a second of a busy client's), at most.
INBOX_EVENTS_KEPT = 200

# This process's WebRTC calls, by call id: between the answer and its end nothing else
# holds on to a call (no consumer, no request), so this keeps it (and shows it to a debugger).
LIVE: dict[str, PeerCall] = {}


class PeerCall:
    """One WebRTC caller: the transport of its ``Call`` (``CallTransport``)."""

    def __init__(self, peer: RTCPeerConnection, weight: int = 1) -> None:
        self.peer = peer
        self.weight = weight  # of this process's call slots (calls.load)
        self.voice = AgentVoice(self._notify)
        self.channel: RTCDataChannel | None = None
        self.pending: deque[str] = deque(maxlen=PENDING_EVENTS_KEPT)
        self.call: Call | None = None
        self.control: ControlChannel | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        # The caller's data-channel events, taken one at a time, in the order they came.
        self.inbox: asyncio.Queue[str | bytes] = asyncio.Queue(maxsize=INBOX_EVENTS_KEPT)
        self.holds_slot = False
        self.closed = False
        self.expects_channel = True  # the offer has a data channel (m=application)
        # Before the offer is taken: aiortc announces the caller's track while it does.
        peer.on("track", self._on_track)
        peer.on("datachannel", self._on_datachannel)
        peer.on("connectionstatechange", self._on_state)
        peer.addTrack(self.voice)

    # --- set-up (agents.webrtc.offers) ----------------------------------------------------
    def attach(self, call: Call) -> None:
        """The call is admitted and its provider session open: from now on the peer's
        events are the call's, and the call's end closes the peer and frees the slot."""
        self.call = call
        self.holds_slot = True
        remote = self.peer.remoteDescription
        self.expects_channel = remote is not None and "m=application" in remote.sdp
        LIVE[call.grant.call_public_id] = self
        self._spawn(self._give_up_unless_connected())
        self._spawn(self._control(call))
        self._spawn(self._read_inbox())

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._spawn(caller_audio(track, self._caller_audio))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self._spawn(self._gone("data channel closed")))
        self._flush_pending()
        self._spawn(self._start())

    async def _on_state(self) -> None:
        state = self.peer.connectionState
        if state == "connected" and not self.expects_channel:
            self._spawn(self._start())
        elif state in ("failed", "closed"):
            self._spawn(self._gone(f"connection {state}"))

    async def _start(self) -> None:
        call = self.call
        if call is None or call.live or call.ended:
            return
        await call.start()
        self._flush_pending()

    async def _give_up_unless_connected(self) -> None:
        await asyncio.sleep(CONNECT_SECONDS)
        call = self.call
        if call is not None and not call.live and not call.ended:
            await call.end(EndReason.CLIENT_CLOSED, "The caller's WebRTC connection never came up.")

    async def _gone(self, why: str) -> None:
        if self.call is not None and not self.call.ended:
            await self.call.end(EndReason.CLIENT_CLOSED, f"The caller went away ({why}).")

    # --- caller -> call -------------------------------------------------------------------
    async def _caller_audio(self, payload: str) -> None:
        call = self.call
        if call is not None and call.live:
            await call.append_audio(payload)

    def _on_message(self, message: str | bytes) -> None:
        try:
            self.inbox.put_nowait(message)
        except asyncio.QueueFull:  # a client flooding the channel: its excess is refused
            event = error_event(
                "Too many events at once: wait for the call to keep up.", "rate_limited"
            )
            self._spawn(self.deliver(orjson.dumps(event).decode()))

    async def _read_inbox(self) -> None:
        while True:
            await self._client_event(await self.inbox.get())

    async def _client_event(self, message: str | bytes) -> None:
        call = self.call
        if call is None or not call.live:
            return
        if isinstance(message, str) and events.OUTPUT_AUDIO_CLEAR in message:
            parsed = _parsed(message)
            if parsed is not None and parsed.get("type") == events.OUTPUT_AUDIO_CLEAR:
                await self._cut_off()  # WebRTC's own event: the output buffer is here
                return
        await call.client_frame(message)

    # --- call -> caller (CallTransport, PlayingTransport) ----------------------------------
    async def deliver(self, frame: str) -> bool:
        channel = self.channel
        if channel is None or channel.readyState == "connecting":
            self.pending.append(frame)
            return True
        if channel.readyState != "open":
            return False
        channel.send(frame)
        return True

    def play(self, event: dict[str, Any]) -> bool:
        kind = event["type"]
        if kind == events.OUTPUT_AUDIO_DELTA:
            delta = event.get("delta")
            if isinstance(delta, str):
                self.voice.add(
                    str(event.get("response_id") or ""),
                    str(event.get("item_id") or ""),
                    base64.b64decode(delta),
                )
            return True
        if kind == events.OUTPUT_AUDIO_DONE:
            self.voice.response_audio_done(str(event.get("response_id") or ""))
        elif kind == events.RESPONSE_DONE:
            response = event.get("response")
            if isinstance(response, dict):
                self.voice.response_audio_done(str(response.get("id") or ""))
        elif kind == events.SPEECH_STARTED and self.voice.is_playing:
            self._spawn(self._cut_off())  # the caller spoke over the agent: barge-in
        return False

    async def _cut_off(self) -> None:
        """Stop the agent's audio where the caller is, and keep the item to what they heard
        (as a WebSocket client would with conversation.item.truncate)."""
        cut = self.voice.clear()
        call = self.call
        if cut is None or call is None or not cut.item_id:
            return
        if call.recorder is not None:
            call.recorder.truncate(cut.item_id, cut.heard_ms)
        await call.send_upstream(
            {
                "type": events.ITEM_TRUNCATE,
                "item_id": cut.item_id,
                "content_index": 0,
                "audio_end_ms": cut.heard_ms,
            }
        )

    def _notify(self, event: dict[str, Any]) -> None:
        """An output_audio_buffer event from the voice track (called from its sender)."""
        self._spawn(self.deliver(orjson.dumps(event).decode()))

    def _flush_pending(self) -> None:
        channel = self.channel
        while self.pending and channel is not None and channel.readyState == "open":
            channel.send(self.pending.popleft())

    async def ended(self, reason: str, farewell: dict[str, Any] | None) -> None:
        if farewell is not None and reason != EndReason.CLIENT_CLOSED:
            await self.deliver(orjson.dumps(farewell).decode())
        await self._keep_quality()
        await self.close()

    async def _keep_quality(self) -> None:
        """The media path's round trip, loss and jitter, on the call's record."""
        call = self.call
        if call is None or not call.live:
            return
        try:
            quality = await media_quality(self.peer)
            await on_call_threads(
                lambda: CallSession.objects.filter(pk=call.grant.call_id).update(
                    media_quality=quality
                )
            )()
        except Exception:  # the call's end is written already: this is extra
            logger.exception("could not keep the media quality of call %s", call.ids()[1])

    # --- control messages from any process (the call's group on the channel layer) ----------
    async def _control(self, call: Call) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        self.control = control = ControlChannel(layer, await layer.new_channel(), call.log)
        await control.join(call.grant.group_name)
        while not call.ended:
            await follow(call, layer, await control.receive())

    # --- the end --------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the peer connection, leave the group, free the slot (once)."""
        if self.closed:
            return
        self.closed = True
        if self.channel is not None and self.channel.readyState == "open":
            # Let the farewell and the last events leave before the connection goes.
            await asyncio.sleep(0.2)
        self.voice.stop()
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        if self.control is not None:
            await self.control.leave()
        try:
            await self.peer.close()
        except Exception as error:  # a connection half gone: nothing more to do
            logger.debug("closing a peer connection failed: %r", error)
        if self.call is not None:
            LIVE.pop(self.call.grant.call_public_id, None)
        if self.holds_slot:
            self.holds_slot = False
            LOAD.release(self.weight)

    def _spawn(self, coroutine: Any) -> None:
        # A context of its own: the call outlives the HTTP request that answered the offer,
        # and asgiref's per-request executor (which the request's context names) with it.
        task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        call = self.call
        if error is not None and call is not None and not call.ended:
            self._spawn(call.fail(error, "webrtc"))


def _parsed(message: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
