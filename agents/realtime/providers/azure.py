"""Azure OpenAI realtime deployments (GA endpoint, ``api-key`` header, no api-version).

The endpoint is the tenant's to set, so it is checked like every outbound address Koe
calls (foundation.outbound): a name resolving to a private, loopback, link-local or metadata
address is refused, and the socket goes to the checked address (DNS cannot change it
in between), with the name kept for TLS and the Host header.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from agents.config import AgentConfig
from agents.realtime.providers.base import ProviderCredentials, ProviderError, WebSocketProvider
from foundation.outbound import OutboundBlocked, public_addresses


class AzureProvider(WebSocketProvider):
    name = "azure"

    def address(
        self, config: AgentConfig, credentials: ProviderCredentials | None
    ) -> tuple[str, dict[str, str]]:
        if credentials is None or not credentials.endpoint:
            raise ProviderError("The Azure credential needs the resource's endpoint and key.")
        parts = urlsplit(credentials.endpoint)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/") + "/openai/v1/realtime"
        query = urlencode({"model": config.model})
        url = urlunsplit((scheme, parts.netloc, path, query, ""))
        return url, {"api-key": credentials.api_key}

    async def connection_options(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        try:
            addresses = await public_addresses(host, port, timeout=self.open_timeout)
        except OutboundBlocked as blocked:
            raise ProviderError(f"The Azure endpoint is not allowed: {blocked}") from blocked
        options: dict[str, Any] = {"host": str(addresses[0]), "port": port}
        if parts.scheme == "wss":
            options["server_hostname"] = host
        return options
