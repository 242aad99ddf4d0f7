"""WebSocket URL routing: the realtime endpoint where OpenAI clients expect it, and the
carriers' media streams."""

from __future__ import annotations

from django.urls import path

from agents.realtime.consumer import RealtimeConsumer
from agents.telephony.telnyx_stream import TelnyxStreamConsumer
from agents.telephony.telnyx_views import TELNYX_STREAM_PATH
from agents.telephony.twilio_stream import TwilioStreamConsumer
from agents.telephony.views import TWILIO_STREAM_PATH

websocket_urlpatterns = [
    path("v1/realtime", RealtimeConsumer.as_asgi()),
    path(TWILIO_STREAM_PATH.lstrip("/"), TwilioStreamConsumer.as_asgi()),
    path(TELNYX_STREAM_PATH.lstrip("/"), TelnyxStreamConsumer.as_asgi()),
]
