"""Azure OpenAI realtime deployments (GA endpoint, ``api-key`` header, no api-version)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from agents.realtime.providers.base import ProviderCredentials, ProviderError, WebSocketProvider


class AzureProvider(WebSocketProvider):
    name = "azure"

    def address(
        self, config: dict[str, Any], credentials: ProviderCredentials | None
    ) -> tuple[str, dict[str, str]]:
        if credentials is None or not credentials.endpoint:
            raise ProviderError("The Azure credential needs the resource's endpoint and key.")
        parts = urlsplit(credentials.endpoint)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/") + "/openai/v1/realtime"
        query = urlencode({"model": config["model"]})
        url = urlunsplit((scheme, parts.netloc, path, query, ""))
        return url, {"api-key": credentials.api_key}
