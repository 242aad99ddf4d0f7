"""OpenAI's Realtime API (GA) over WebSocket, with the tenant's key or the operator's."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings

from agents.config import AgentConfig
from agents.realtime.providers.base import ProviderCredentials, ProviderError, WebSocketProvider


class OpenAIProvider(WebSocketProvider):
    name = "openai"

    def address(
        self, config: AgentConfig, credentials: ProviderCredentials | None
    ) -> tuple[str, dict[str, str]]:
        api_key = credentials.api_key if credentials else settings.OPENAI_API_KEY
        if not api_key:
            raise ProviderError(
                "No OpenAI key: add one in the dashboard's provider keys or set OPENAI_API_KEY."
            )
        base = settings.KOE_OPENAI_REALTIME_URL.rstrip("/")
        url = f"{base}/realtime?{urlencode({'model': config.model})}"
        return url, {"Authorization": f"Bearer {api_key}"}
