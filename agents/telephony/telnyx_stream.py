"""Telnyx's bidirectional media stream as a call transport: ``/v1/telephony/telnyx/stream``.

Telnyx connects here once the webhook's ``answer`` command (``telnyx_views``) forked the
call, at the stream URL it was given, whose query string carries the stream token. It
speaks the messages in ``agents.telephony.telnyx``: ``start`` opens the call, ``media``
the caller's μ-law, ``mark`` the echo of Koe's marks, ``dtmf`` a key press, ``stop`` the
end of the call. Telnyx does not promise to deliver frames in order, so the caller's
audio passes through a small reorder buffer keyed by ``sequence_number``; and it takes
no less than 20 ms of audio a message, so the agent's audio goes out in whole 20 ms
pieces (an item's last piece padded with silence). Closing the
stream does not end a Telnyx call: when the call ends on Koe's side, Koe hangs up with
the ``hangup`` command, unless it is transferring the caller. Everything else is the
shared ``PhoneStreamConsumer``'s.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any
from urllib.parse import parse_qs

from agents.realtime import events
from agents.telephony import telnyx
from agents.telephony.models import Carrier, PhoneCall
from agents.telephony.stream import PhoneStreamConsumer
from foundation.call_threads import on_call_threads

INBOUND_TRACKS = frozenset({"inbound", "inbound_track"})
# Frames held back waiting for a late one: 3 frames of 20 ms. Past that (or that long) the
# missing frame is taken for lost and the ones after it go on, so a loss costs the caller
# at most 60 ms of delay, never a stalled stream.
REORDER_FRAMES = 3
REORDER_WAIT_SECONDS = 0.06


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> int | None:
    """A message's ``sequence_number`` (a string in Telnyx's examples), or None."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ReorderBuffer:
    """The caller's audio frames in ``sequence_number`` order.

    Every Telnyx message is numbered from one sequence (``start`` is 1), so the numbers of
    other messages (marks, key presses) are noted too: they are gaps no audio will fill.
    A frame that comes after its turn has passed, or twice, is dropped. Pure bookkeeping.
    """

    def __init__(self, depth: int = REORDER_FRAMES) -> None:
        self.depth = depth
        self.next: int | None = None  # the number whose turn it is; None before the first
        self.held: dict[int, str | None] = {}  # None: a number that carried no audio
        self.dropped = 0

    def start_after(self, sequence: int | None) -> None:
        """The stream's ``start`` had this number: audio starts after it."""
        if self.next is None and sequence is not None:
            self.next = sequence + 1

    def push(self, sequence: int | None, payload: str | None) -> list[str]:
        """A message numbered ``sequence`` (with audio, or None): the audio now in turn."""
        if sequence is None:
            # Nothing to order it by: it goes as it came.
            return [payload] if payload is not None else []
        if (self.next is not None and sequence < self.next) or sequence in self.held:
            if payload is not None:
                self.dropped += 1
            return []
        self.held[sequence] = payload
        return self._release()

    @property
    def holding(self) -> bool:
        """Whether audio is held back waiting for a missing frame."""
        return any(payload is not None for payload in self.held.values())

    def drain(self) -> list[str]:
        """Everything held, in order, the missing frames given up on."""
        if not self.held:
            return []
        self.next = min(self.held)
        released = self._in_turn()
        while self.held:
            self.next = min(self.held)
            released += self._in_turn()
        return released

    def _frames(self) -> int:
        return sum(1 for payload in self.held.values() if payload is not None)

    def _release(self) -> list[str]:
        if self.next is None:
            # No start number seen: the first frames wait to be sorted among themselves.
            if self._frames() <= self.depth:
                return []
            self.next = min(self.held)
        released = self._in_turn()
        # Too much waiting on a missing number (audio, or anything at all): it is lost.
        while self.held and (self._frames() > self.depth or len(self.held) > 4 * self.depth):
            self.next = min(self.held)
            released += self._in_turn()
        return released

    def _in_turn(self) -> list[str]:
        released: list[str] = []
        assert self.next is not None
        while self.next in self.held:
            payload = self.held.pop(self.next)
            self.next += 1
            if payload is not None:
                released.append(payload)
        return released


def _hang_up_command(call_id: int) -> telnyx.Command | None:
    """The hang-up for call ``call_id``'s Telnyx leg, with its account's API key."""
    phone_call = (
        PhoneCall.objects.select_related("phone_number__carrier_account")
        .filter(call_id=call_id, carrier=Carrier.TELNYX)
        .first()
    )
    if phone_call is None or phone_call.phone_number is None:
        return None
    account = phone_call.phone_number.carrier_account
    return telnyx.hang_up(account.auth_token, phone_call.carrier_call_id)


class TelnyxStreamConsumer(PhoneStreamConsumer):
    carrier = "telnyx"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reorder = ReorderBuffer()
        self.reorder_wait: asyncio.TimerHandle | None = None
        self.stopped = False  # Telnyx said the call is over: nothing to hang up
        self.hang_up_command: telnyx.Command | None = None
        # The agent's audio not sent yet (under 20 ms), and the item it belongs to.
        self.carry = bytearray()
        self.carry_item = ""

    def stream_token(self) -> str:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        tokens = query.get("token") or [""]
        return tokens[0]

    async def frame(self, message: dict[str, Any]) -> None:
        event = self.parse(message)
        if event is None:
            return
        kind = event.get("event")
        sequence = _sequence(event.get("sequence_number"))
        if kind == "media":
            media = _object(event.get("media"))
            payload = media.get("payload")
            inbound = media.get("track", "inbound") in INBOUND_TRACKS
            audio = payload if inbound and isinstance(payload, str) else None
            await self.heard(self.reorder.push(sequence, audio))
            return
        if kind != "start" and sequence is not None:
            await self.heard(self.reorder.push(sequence, None))
        if kind == "start":
            self.reorder.start_after(sequence)
            await self.begin(str(event.get("stream_id") or ""), self.stream_token())
        elif kind == "mark":
            self.mark_played(_object(event.get("mark")).get("name"))
        elif kind == "dtmf":
            self.pressed(_object(event.get("dtmf")).get("digit"))
        elif kind == "stop":
            self.stopped = True
            await self.heard(self.reorder.drain())
            await self.hung_up()
        elif kind == "error":
            self.log("telnyx stream error: %s", str(event.get("payload"))[:200])
        elif kind != "connected":
            self.log("telnyx sent an unknown event %r; ignored", kind)

    async def begin(self, stream_id: str, token: str) -> None:
        await super().begin(stream_id, token)
        if self.call is None or self.hang_up_command is not None:
            return
        # Known from the start, so that the end needs no database (it may be away then).
        try:
            self.hang_up_command = await on_call_threads(_hang_up_command)(self.call.grant.call_id)
        except Exception as error:
            self.log("telnyx hang-up unknown: %r", error)

    async def heard(self, payloads: list[str]) -> None:
        """Audio now in order goes to the call; held audio waits a little at most."""
        for payload in payloads:
            await self.caller_audio(payload)
        if not self.reorder.holding:
            if self.reorder_wait is not None:
                self.reorder_wait.cancel()
                self.reorder_wait = None
        elif self.reorder_wait is None and self.call is not None:
            call = self.call
            self.reorder_wait = asyncio.get_running_loop().call_later(
                REORDER_WAIT_SECONDS, lambda: call.spawn(self._waited())
            )

    async def _waited(self) -> None:
        self.reorder_wait = None
        await self.heard(self.reorder.drain())

    # --- call -> Telnyx -----------------------------------------------------------------------
    async def deliver_event(self, event: dict[str, Any]) -> bool:
        kind = event.get("type")
        if kind == events.OUTPUT_AUDIO_DELTA:
            return await self.agent_audio(str(event.get("item_id") or ""), event.get("delta"))
        if kind == events.SPEECH_STARTED:
            self.carry.clear()  # never sent, so never heard: nothing to clear or count
        elif kind in (events.OUTPUT_AUDIO_DONE, events.RESPONSE_DONE) and not await self.flush():
            return False
        return await super().deliver_event(event)

    async def agent_audio(self, item_id: str, payload: Any) -> bool:
        """Audio of ``item_id`` goes out in whole 20 ms pieces; the rest waits for more."""
        if not isinstance(payload, str) or not payload:
            return True
        try:
            audio = base64.b64decode(payload)
        except (binascii.Error, ValueError):
            self.log("agent audio that is not base64; dropped")
            return True
        if item_id != self.carry_item and not await self.flush():
            return False
        self.carry_item = item_id
        self.carry += audio
        whole = len(self.carry) // telnyx.MIN_MEDIA_BYTES * telnyx.MIN_MEDIA_BYTES
        if not whole:
            return True
        piece = bytes(self.carry[:whole])
        del self.carry[:whole]
        return await self.play_piece(item_id, piece, len(piece))

    async def flush(self) -> bool:
        """The item's last piece, under 20 ms, padded with silence to 20 ms."""
        if not self.carry:
            return True
        tail = bytes(self.carry)
        self.carry.clear()
        padding = bytes([telnyx.MULAW_SILENCE]) * (telnyx.MIN_MEDIA_BYTES - len(tail))
        # Only the item's own audio is counted: a truncation never reaches past its end.
        return await self.play_piece(self.carry_item, tail + padding, len(tail))

    async def play_piece(self, item_id: str, audio: bytes, item_bytes: int) -> bool:
        return await self.play(item_id, base64.b64encode(audio).decode(), item_bytes)

    def media_message(self, payload: str) -> dict[str, Any]:
        return telnyx.media(payload)

    def mark_message(self, name: str) -> dict[str, Any]:
        return telnyx.mark(name)

    def clear_message(self) -> dict[str, Any]:
        return telnyx.clear()

    async def ended(self, reason: str, farewell: dict[str, Any] | None) -> None:
        if self.reorder_wait is not None:
            self.reorder_wait.cancel()
        if not self.stopped and not self.transferring_to and self.hang_up_command is not None:
            # A Telnyx call outlives its stream: without this the caller would be left in
            # silence. (A call the caller has left already refuses it, harmlessly.) A call
            # being transferred is the person's now: hanging it up would drop the caller.
            telnyx.commands.submit(self.hang_up_command)
        await super().ended(reason, farewell)
