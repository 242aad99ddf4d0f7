"""Twilio's bidirectional Media Streams as a call transport: ``/v1/telephony/twilio/stream``.

Twilio connects here when the call's TwiML says ``<Connect><Stream>`` (``views``) and
speaks the protocol in ``agents.telephony.twilio``. Its ``start`` message carries the
single-use stream token the webhook issued; the call opens with μ-law audio both ways, so
the caller's ``media`` payloads go to the provider as they are and the agent's audio comes
back as they are, each piece followed by a ``mark``. When the provider hears the caller
start speaking over the agent, the audio buffered at Twilio is cleared and the agent's
item truncated at what the echoed marks say was heard. Key presses (``dtmf``) reach the
agent as a typed message once the caller pauses. ``stop`` is the caller hanging up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from agents.realtime import events
from agents.realtime.errors import CLOSE_NORMAL
from agents.realtime.transport import CallConsumer
from agents.telephony import twilio
from agents.telephony.admission import open_phone_call
from agents.telephony.playback import Playback
from calls.models import EndReason

logger = logging.getLogger("koe.telephony")

# Key presses are gathered until the caller pauses this long (or presses #), so that an
# account number reaches the agent as one message rather than one response per digit.
DTMF_PAUSE_SECONDS = 1.5
DTMF_DIGITS = frozenset("0123456789*#ABCD")
INBOUND_TRACKS = frozenset({"inbound", "inbound_track"})


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


class TwilioStreamConsumer(CallConsumer):
    closed_detail = "The carrier closed the media stream ({code})."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream_sid = ""
        self.started = False
        self.playback = Playback()
        self.digits = ""
        self.keypad_wait: asyncio.TimerHandle | None = None

    async def connect(self) -> None:
        # Twilio sends ``connected`` and ``start`` once the socket is open: the caller is
        # admitted then, with the token ``start`` carries.
        await self.accept()

    # --- Twilio -> call ---------------------------------------------------------------------
    async def frame(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        try:
            event = orjson.loads(text) if text is not None else None
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            self.log("twilio sent a frame that is not a JSON object; ignored")
            return
        kind = event.get("event")
        if kind == "media":
            await self._media(event.get("media"))
        elif kind == "start":
            await self._start(event)
        elif kind == "mark":
            mark = event.get("mark")
            if isinstance(mark, dict):
                self.playback.echoed(str(mark.get("name") or ""))
        elif kind == "dtmf":
            dtmf = event.get("dtmf")
            if isinstance(dtmf, dict):
                self._pressed(str(dtmf.get("digit") or ""))
        elif kind == "stop":
            if self.call is not None:
                await self.call.end(EndReason.CLIENT_CLOSED, "The caller hung up.")
            await self.close_quietly(CLOSE_NORMAL)
        elif kind != "connected":
            self.log("twilio sent an unknown event %r; ignored", kind)

    async def _start(self, event: dict[str, Any]) -> None:
        if self.started:
            return  # one call per stream: a repeated start changes nothing
        self.started = True
        start = event.get("start")
        start = start if isinstance(start, dict) else {}
        self.stream_sid = str(event.get("streamSid") or start.get("streamSid") or "")
        parameters = start.get("customParameters")
        token = str(parameters.get("token") or "") if isinstance(parameters, dict) else ""
        await self.open_call(lambda: open_phone_call(token), "twilio stream")

    async def _media(self, media: Any) -> None:
        if self.call is None or not isinstance(media, dict):
            return
        if media.get("track", "inbound") not in INBOUND_TRACKS:
            return
        payload = media.get("payload")
        if isinstance(payload, str):
            # Re-encoded, never spliced: the payload is the carrier's text.
            append = {"type": events.INPUT_AUDIO_APPEND, "audio": payload}
            await self.call.client_frame(orjson.dumps(append).decode())

    # --- key presses --------------------------------------------------------------------------
    def _pressed(self, digit: str) -> None:
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

    # --- call -> Twilio (CallTransport) -------------------------------------------------------
    async def deliver(self, frame: str) -> bool:
        event = orjson.loads(frame)
        kind = event.get("type")
        if kind == events.OUTPUT_AUDIO_DELTA:
            payload = event.get("delta")
            if not isinstance(payload, str) or not payload:
                return True
            mark = self.playback.sent(str(event.get("item_id") or ""), base64_length(payload))
            return await self._send(twilio.media(self.stream_sid, payload)) and await self._send(
                twilio.mark(self.stream_sid, mark)
            )
        if kind == events.SPEECH_STARTED:
            return await self._barge_in()
        if kind == events.ERROR:
            error = event.get("error")
            self.log("error event: %s", error.get("message") if isinstance(error, dict) else error)
        return True

    async def _barge_in(self) -> bool:
        """The caller spoke over the agent: drop what Twilio still holds, and truncate the
        agent's item at what the caller heard."""
        heard = self.playback.interrupt()
        if heard is None:
            return True
        if not await self._send(twilio.clear(self.stream_sid)):
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

    async def ended(self, reason: str, farewell: dict[str, Any] | None) -> None:
        if self.keypad_wait is not None:
            self.keypad_wait.cancel()
        await self.control.leave()
        if reason == EndReason.CLIENT_CLOSED:
            return
        if farewell is not None:
            self.log("call ended: %s", farewell["error"]["message"])
        # Closing the stream ends <Connect>; with no TwiML after it, Twilio hangs up.
        await self.close_quietly(CLOSE_NORMAL)

    async def refuse(
        self, message: str, code: str, error_type: str, close_code: int | None = None
    ) -> None:
        self.refused = True
        self.log("stream refused code=%s: %s", code, message)
        await self.close_quietly(close_code or CLOSE_NORMAL)

    async def _send(self, message: dict[str, Any]) -> bool:
        try:
            await self.send(text_data=orjson.dumps(message).decode())
        except Exception as error:
            logger.debug("send failed tenant=%s call=%s: %r", *self.ids(), error)
            return False
        return True
