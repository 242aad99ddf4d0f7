"""WebSocket URL routing: the realtime endpoint, where OpenAI clients expect it."""

from __future__ import annotations

from django.urls import path

from agents.realtime.consumer import RealtimeConsumer

websocket_urlpatterns = [
    path("v1/realtime", RealtimeConsumer.as_asgi()),
]
