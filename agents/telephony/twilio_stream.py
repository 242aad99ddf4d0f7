"""Twilio's bidirectional Media Streams as a call transport: ``/v1/telephony/twilio/stream``.

Twilio connects here when the call's TwiML says ``<Connect><Stream>`` (``views``) and
speaks the messages in ``agents.telephony.twilio``: ``start`` carries the stream token as
a custom parameter, ``media`` the caller's μ-law, ``mark`` the echo of Koe's marks,
``dtmf`` a key press, ``stop`` the caller hanging up. Everything else is the shared
``PhoneStreamConsumer``'s.
"""

from __future__ import annotations

from typing import Any

from agents.telephony import twilio
from agents.telephony.stream import PhoneStreamConsumer

INBOUND_TRACKS = frozenset({"inbound", "inbound_track"})


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class TwilioStreamConsumer(PhoneStreamConsumer):
    carrier = "twilio"

    async def frame(self, message: dict[str, Any]) -> None:
        event = self.parse(message)
        if event is None:
            return
        kind = event.get("event")
        if kind == "media":
            media = _object(event.get("media"))
            if media.get("track", "inbound") in INBOUND_TRACKS:
                await self.caller_audio(media.get("payload"))
        elif kind == "start":
            start = _object(event.get("start"))
            stream_sid = str(event.get("streamSid") or start.get("streamSid") or "")
            token = _object(start.get("customParameters")).get("token")
            await self.begin(stream_sid, str(token or ""))
        elif kind == "mark":
            self.mark_played(_object(event.get("mark")).get("name"))
        elif kind == "dtmf":
            self.pressed(_object(event.get("dtmf")).get("digit"))
        elif kind == "stop":
            await self.hung_up()
        elif kind != "connected":
            self.log("twilio sent an unknown event %r; ignored", kind)

    def media_message(self, payload: str) -> dict[str, Any]:
        return twilio.media(self.stream_id, payload)

    def mark_message(self, name: str) -> dict[str, Any]:
        return twilio.mark(self.stream_id, name)

    def clear_message(self) -> dict[str, Any]:
        return twilio.clear(self.stream_id)
