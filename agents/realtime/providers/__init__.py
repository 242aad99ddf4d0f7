"""Realtime providers: one interface, chosen per agent (openai, azure, local)."""

from __future__ import annotations

from agents.realtime.providers.base import (
    ProviderConnection,
    ProviderCredentials,
    ProviderError,
    RealtimeProvider,
)
from agents.realtime.providers.registry import get_provider

__all__ = [
    "ProviderConnection",
    "ProviderCredentials",
    "ProviderError",
    "RealtimeProvider",
    "get_provider",
]
