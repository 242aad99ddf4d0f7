"""WebSocket URL routing; the realtime broker's consumers are mounted here."""

from __future__ import annotations

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
