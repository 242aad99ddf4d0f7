"""ICE servers for WebRTC callers: the configured STUN/TURN servers, and TURN credentials
minted per session token when Koe runs its own TURN server (coturn).

coturn's ``use-auth-secret`` mode (the "TURN REST API" of draft-uberti-behave-turn-rest)
takes a username ``<expiry unix time>:<label>`` and a password that is the base64 of
HMAC-SHA1 over that username with the secret both sides share, so no per-call state is
kept on the TURN server and a leaked credential stops working at its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from django.conf import settings


def turn_credential(
    label: str, ttl_seconds: int, secret: str, now: float | None = None
) -> dict[str, str]:
    expiry = int((now if now is not None else time.time()) + ttl_seconds)
    username = f"{expiry}:{label}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return {"username": username, "credential": base64.b64encode(digest).decode()}


def ice_servers_for_caller(label: str) -> list[dict[str, Any]]:
    """What a browser is handed with its session token (``RTCConfiguration.iceServers``)."""
    servers: list[dict[str, Any]] = [dict(server) for server in settings.KOE_ICE_SERVERS]
    if settings.KOE_TURN_SECRET and settings.KOE_TURN_URLS:
        servers.append(
            {
                "urls": list(settings.KOE_TURN_URLS),
                **turn_credential(
                    label, settings.KOE_TURN_CREDENTIAL_SECONDS, settings.KOE_TURN_SECRET
                ),
            }
        )
    return servers
