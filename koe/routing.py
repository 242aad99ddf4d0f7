"""WebSocket URL routing: the realtime endpoint where OpenAI clients expect it (with
``?call_id=``, a tenant's server joining a live call: the sideband), and the carriers'
media streams."""

from __future__ import annotations

from typing import Any

from django.urls import path

from agents.realtime.consumer import RealtimeConsumer
from agents.realtime.sideband import SidebandConsumer, wants_sideband
from agents.telephony.telnyx_stream import TelnyxStreamConsumer
from agents.telephony.telnyx_views import TELNYX_STREAM_PATH
from agents.telephony.twilio_stream import TwilioStreamConsumer
from agents.telephony.views import TWILIO_STREAM_PATH

_realtime = RealtimeConsumer.as_asgi()
_sideband = SidebandConsumer.as_asgi()


async def realtime_endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/v1/realtime?model=`` opens a call; ``/v1/realtime?call_id=`` joins one."""
    application = _sideband if wants_sideband(scope) else _realtime
    await application(scope, receive, send)


websocket_urlpatterns = [
    path("v1/realtime", realtime_endpoint),  # type: ignore[arg-type]
    path(TWILIO_STREAM_PATH.lstrip("/"), TwilioStreamConsumer.as_asgi()),
    path(TELNYX_STREAM_PATH.lstrip("/"), TelnyxStreamConsumer.as_asgi()),
]
