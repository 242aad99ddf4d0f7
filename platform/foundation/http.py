"""Facts about an HTTP request that several apps need, decided in one place."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The caller's address for rate limits.

    With KOE_TRUSTED_PROXIES = N proxies in front, each appending to X-Forwarded-For, the
    client is the Nth address from the right; anything further left is whatever the
    client sent, so it is never trusted (a forged header must not buy a new bucket).
    """
    hops = settings.KOE_TRUSTED_PROXIES
    forwarded = request.headers.get("X-Forwarded-For", "")
    if hops > 0 and forwarded:
        addresses = [address.strip() for address in forwarded.split(",") if address.strip()]
        if addresses:
            return addresses[max(0, len(addresses) - hops)]
    return str(request.META.get("REMOTE_ADDR") or "unknown")
