"""Which provider implementation serves which agent provider name."""

from __future__ import annotations

from agents.realtime.providers.azure import AzureProvider
from agents.realtime.providers.base import ProviderError, RealtimeProvider
from agents.realtime.providers.local import LocalProvider
from agents.realtime.providers.openai import OpenAIProvider

_PROVIDERS: dict[str, type[RealtimeProvider]] = {
    "openai": OpenAIProvider,
    "azure": AzureProvider,
    "local": LocalProvider,
}


def register(name: str, provider: type[RealtimeProvider]) -> None:
    """Plug in another implementation (a deployment's own, or a test double)."""
    _PROVIDERS[name] = provider


def get_provider(name: str) -> RealtimeProvider:
    try:
        return _PROVIDERS[name]()
    except KeyError:
        raise ProviderError(f"The {name!r} provider is not available on this deployment.") from None
