"""A carrier's media stream as a call transport: what Twilio's and Telnyx's share.

The carrier connects a WebSocket once the call is answered and speaks its own JSON
messages; a subclass reads them (``frame``) and writes them (``media_message``,
``mark_message``, ``clear_message``). This base opens the call with the single-use
stream token the carrier's webhook handed out, with μ-law audio both ways, so the
caller's audio goes to the provider as it is and the agent's comes back as it is, each
piece followed by a mark. When the provider hears the caller start speaking over the
agent, the audio buffered at the carrier is cleared and the agent's item truncated at
what the echoed marks say was heard. Key presses reach the agent as a typed message once
the caller pauses. The end of the call closes the stream, and the carrier hangs up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from agents.realtime import events
from agents.realtime.errors import CLOSE_NORMAL
from agents.realtime.transport import CallConsumer
from agents.telephony import actions
from agents.telephony.admission import open_phone_call
from agents.telephony.greeting import GreetingCheck
from agents.telephony.playback import Playback
from agents.telephony.views import own_check_wanted, own_verdict
from calls.models import EndReason
from foundation.call_threads import on_call_threads

logger = logging.getLogger("koe.telephony")

# Key presses are gathered until the caller pauses this long (or presses #), so that an
# account number reaches the agent as one message rather than one response per digit.
DTMF_PAUSE_SECONDS = 1.5
DTMF_DIGITS = frozenset("0123456789*#ABCD")
# A carrier sends its start message right after connecting; a connection that does not
# is not a carrier's, and is not kept open.
START_TIMEOUT_SECONDS = 10.0


def base64_length(payload: str) -> int:
    """Bytes that base64 text decodes to, without decoding it."""
    padding = 2 if payload.endswith("==") else 1 if payload.endswith("=") else 0
    return len(payload) * 3 // 4 - padding


def keypad_message(digits: str) -> dict[str, Any]:
    text = f"[The caller pressed {' '.join(digits)} on the phone keypad.]"
    return {
        "type": events.ITEM_CREATE,
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


class PhoneStreamConsumer(CallConsumer):
    closed_detail = "The carrier closed the media stream ({code})."
    carrier = "carrier"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream_id = ""
        self.started = False
        self.playback = Playback()
        self.digits = ""
        self.keypad_wait: asyncio.TimerHandle | None = None
        self.transferring_to = ""  # the carrier is moving the caller there
        self.start_wait: asyncio.TimerHandle | None = None
        # Koe's own answering-machine check, on an outbound call's first seconds.
        self.greeting_check: GreetingCheck | None = None

    async def connect(self) -> None:
        # The carrier sends its start message once the socket is open: the caller is
        # admitted then, with the token it carries.
        await self.accept()
        loop = asyncio.get_running_loop()
        self.start_wait = loop.call_later(
            START_TIMEOUT_SECONDS, lambda: loop.create_task(self._never_started())
        )

    async def _never_started(self) -> None:
        if not self.started:
            self.refused = True
            self.log(
                "%s stream sent no start in %.0f s; closed", self.carrier, START_TIMEOUT_SECONDS
            )
            await self.close_quietly(CLOSE_NORMAL)

    # --- the carrier's messages, as a subclass writes them ------------------------------------
    def media_message(self, payload: str) -> dict[str, Any]:
        raise NotImplementedError

    def mark_message(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def clear_message(self) -> dict[str, Any]:
        raise NotImplementedError

    # --- carrier -> call (called by a subclass's frame()) --------------------------------------
    async def begin(self, stream_id: str, token: str) -> None:
        """The stream started: open the call with the token it carries (once)."""
        if self.started:
            return  # one call per stream: a repeated start changes nothing
        self.started = True
        if self.start_wait is not None:
            self.start_wait.cancel()
        self.stream_id = stream_id
        call = await self.open_call(lambda: open_phone_call(token), f"{self.carrier} stream")
        if call is not None and await on_call_threads(own_check_wanted)(call.grant.call_id):
            self.greeting_check = GreetingCheck()

    async def caller_audio(self, payload: Any) -> None:
        if self.call is not None and isinstance(payload, str):
            if self.greeting_check is not None:
                self._check_greeting(payload)
            await self.call.append_audio(payload)

    def _check_greeting(self, payload: str) -> None:
        assert self.greeting_check is not None and self.call is not None
        verdict = self.greeting_check.feed(payload)
        if verdict is not None:
            self.greeting_check = None
            self.call.spawn(self._greeting_heard(verdict))

    async def _greeting_heard(self, verdict: str) -> None:
        """Koe's own check decided who answered; a machine is acted on as the carrier's
        verdict would be (unless the carrier's came first)."""
        assert self.call is not None
        self.log("own answering-machine check: %s", verdict)
        message = await on_call_threads(own_verdict)(self.call.grant.call_id, verdict)
        if message is not None:
            await self.call_voicemail({"message": message})

    def mark_played(self, name: Any) -> None:
        self.playback.echoed(str(name or ""))

    async def hung_up(self) -> None:
        if self.call is not None and self.transferring_to:
            # The carrier left the stream to dial the person: that is the transfer.
            detail = f"Transferred to {self.transferring_to}."
            await self.call.end(EndReason.TRANSFERRED, detail)
        elif self.call is not None:
            await self.call.end(EndReason.CLIENT_CLOSED, "The caller hung up.")
        await self.close_quietly(CLOSE_NORMAL)

    def parse(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """A text frame as a JSON object, or None (logged) for anything else."""
        text = message.get("text")
        try:
            event = orjson.loads(text) if text is not None else None
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            self.log("%s sent a frame that is not a JSON object; ignored", self.carrier)
            return None
        return event

    # --- control messages (channel layer group call.<id>) ---------------------------------------
    async def call_voicemail(self, message: dict[str, Any]) -> None:
        """{"type": "call.voicemail", "message": ...}: the carrier heard an answering
        machine. What the agent was saying is dropped; it leaves the message, or hangs up."""
        if self.call is None:
            return
        if self.playback.interrupt() is not None:
            await self.send_message(self.clear_message())
        await self.call.leave_voicemail(str(message.get("message") or ""))

    async def transfer(self, target: str) -> bool:
        """``TransferringTransport``: the carrier moves the caller to ``target``."""
        if self.call is None:
            return False
        self.transferring_to = target
        moved = await on_call_threads(actions.transfer)(self.call.grant.call_id, target)
        if not moved:
            self.transferring_to = ""
        return moved

    # --- key presses --------------------------------------------------------------------------
    def pressed(self, digit: Any) -> None:
        digit = str(digit or "")
        if digit not in DTMF_DIGITS or self.call is None:
            return
        self.digits = (self.digits + digit)[-64:]
        if self.keypad_wait is not None:
            self.keypad_wait.cancel()
        call = self.call
        if digit == "#":
            call.spawn(self._keys_entered())
        else:
            loop = asyncio.get_running_loop()
            self.keypad_wait = loop.call_later(
                DTMF_PAUSE_SECONDS, lambda: call.spawn(self._keys_entered())
            )

    async def _keys_entered(self) -> None:
        digits, self.digits = self.digits, ""
        call = self.call
        if not digits or call is None or call.ended:
            return
        self.log("keypad digits=%d", len(digits))
        await call.client_frame(orjson.dumps(keypad_message(digits)).decode())
        await call.request_response()

    # --- call -> carrier (CallTransport) ------------------------------------------------------
    async def deliver(self, frame: str) -> bool:
        event = orjson.loads(frame)
        return await self.deliver_event(event) if isinstance(event, dict) else True

    async def deliver_event(self, event: dict[str, Any]) -> bool:
        """``EventTransport``: the events a phone line turns into its messages (agent
        audio, the caller barging in); the others have no one to show them to."""
        kind = event.get("type")
        if kind == events.OUTPUT_AUDIO_DELTA:
            payload = event.get("delta")
            if not isinstance(payload, str) or not payload:
                return True
            item_id = str(event.get("item_id") or "")
            return await self.play(item_id, payload, base64_length(payload))
        if kind in (events.OUTPUT_AUDIO_DONE, events.RESPONSE_DONE):
            return await self.send_mark(self.playback.close())
        if kind == events.SPEECH_STARTED:
            return await self._barge_in()
        if kind == events.ERROR:
            error = event.get("error")
            self.log("error event: %s", error.get("message") if isinstance(error, dict) else error)
        return True

    async def play(self, item_id: str, payload: str, item_bytes: int) -> bool:
        """Agent audio (base64 μ-law) to the carrier, with the marks due around it;
        ``item_bytes``: how much of the item it is (padding aside)."""
        before, after = self.playback.audio(item_id, item_bytes)
        return (
            await self.send_mark(before)
            and await self.send_message(self.media_message(payload))
            and await self.send_mark(after)
        )

    async def send_mark(self, name: str | None) -> bool:
        return name is None or await self.send_message(self.mark_message(name))

    async def _barge_in(self) -> bool:
        """The caller spoke over the agent: drop what the carrier still holds, and truncate
        the agent's item at what the caller heard."""
        heard = self.playback.interrupt()
        if heard is None:
            return True
        if not await self.send_message(self.clear_message()):
            return False
        item_id, audio_end_ms = heard
        if item_id and self.call is not None:
            truncate = {
                "type": events.ITEM_TRUNCATE,
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": audio_end_ms,
            }
            await self.call.client_frame(orjson.dumps(truncate).decode())
        return True

    async def disconnect(self, code: int) -> None:
        if self.start_wait is not None:
            self.start_wait.cancel()
        if self.transferring_to:
            await self.hung_up()  # the carrier dropped the stream to dial: the transfer
            return
        await super().disconnect(code)

    async def ended(self, reason: str, farewell: dict[str, Any] | None) -> None:
        if self.keypad_wait is not None:
            self.keypad_wait.cancel()
        await self.control.leave()
        if reason == EndReason.CLIENT_CLOSED:
            return
        if farewell is not None:
            self.log("call ended: %s", farewell["error"]["message"])
        # Closing the stream ends it; with nothing after it, the carrier hangs up.
        await self.close_quietly(CLOSE_NORMAL)

    async def refuse(
        self, message: str, code: str, error_type: str, close_code: int | None = None
    ) -> None:
        self.refused = True
        self.log("stream refused code=%s: %s", code, message)
        await self.close_quietly(close_code or CLOSE_NORMAL)

    async def send_message(self, message: dict[str, Any]) -> bool:
        try:
            await self.send(text_data=orjson.dumps(message).decode())
        except Exception as error:
            logger.debug("send failed tenant=%s call=%s: %r", *self.ids(), error)
            return False
        return True
