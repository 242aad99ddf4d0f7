"""Minting short-lived, single-use session tokens for browsers (OpenAI's client secrets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from agents.consent import consent_text_for
from agents.models import Agent, WidgetKey
from agents.realtime.access import AccessDenied, check_budget, parse_consent
from agents.webrtc.ice import ice_servers_for_caller
from calls.models import Channel, ConsentMethod, ConsentScope, SessionToken
from foundation.text import storable
from tenancy.models import Tenant

MIN_TTL_SECONDS = 10
MAX_TTL_SECONDS = 600


@dataclass(frozen=True)
class MintedToken:
    value: str
    expires_at: int  # seconds since the epoch, like OpenAI's response
    agent: Agent
    consent_scope: str

    def response(self) -> dict[str, Any]:
        """The body of OpenAI's POST /v1/realtime/client_secrets, plus Koe's fields."""
        return {
            "value": self.value,
            "expires_at": self.expires_at,
            "session": {
                "type": "realtime",
                "object": "realtime.session",
                "model": self.agent.public_id,
                "output_modalities": ["audio"],
            },
            "agent": {"id": self.agent.public_id, "name": self.agent.name},
            "consent": self.consent_scope,
            # For a WebRTC call (POST /v1/realtime/calls): the browser's iceServers.
            "ice_servers": ice_servers_for_caller(self.agent.public_id),
        }


def mint(
    *,
    tenant: Tenant,
    agent: Agent,
    channel: str,
    consent: str = "",
    consent_method: str = "",
    end_user: str = "",
    origin: str = "",
    ttl_seconds: int | None = None,
    consent_version: int | None = None,
) -> MintedToken:
    """Issue a token carrying the caller's answer to the agent's consent prompt.

    ``consent_version`` is the version of the prompt the caller was shown (the widget's
    config says which). When it is not the current one the prompt changed after the caller
    read it: the token is refused (``consent_changed``) rather than recording words the
    caller never saw; the client shows the current prompt and asks again. Without it
    (server-to-server clients that show their own wording) the current version is recorded.
    """
    ttl = ttl_seconds or settings.KOE_SESSION_TOKEN_TTL_SECONDS
    if not MIN_TTL_SECONDS <= ttl <= MAX_TTL_SECONDS:
        raise AccessDenied(
            f"expires_after.seconds must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}.",
            "invalid_expires_after",
        )
    scope = parse_consent(consent, agent)
    check_budget(tenant)
    shown = consent_text_for(agent) if consent else None
    if shown is not None and consent_version is not None and consent_version != shown.version:
        raise AccessDenied(
            f"The consent prompt changed (the caller saw version {consent_version}, the "
            f"current one is {shown.version}); show the current prompt and ask again.",
            "consent_changed",
        )
    token, value = SessionToken.issue(
        ttl=timedelta(seconds=ttl),
        tenant=tenant,
        agent=agent,
        channel=channel,
        origin=origin,
        end_user_ref=storable(end_user[:200]),
        consent_scope=scope,
        consent_method=consent_method if consent else "",
        consent_at=timezone.now() if consent else None,
        consent_text=shown.text if shown else "",
        consent_version=shown.version if shown else None,
    )
    return MintedToken(value, int(token.expires_at.timestamp()), agent, scope)


def mint_for_widget(
    *,
    publishable_key: str,
    agent_id: str,
    origin: str,
    consent: str,
    client_ip: str,
    consent_version: int | None = None,
) -> MintedToken:
    """The public widget endpoint: a publishable key, checked against the page's origin.

    ``consent_version`` is the prompt version the widget showed (from its config); see
    ``mint`` for what happens when it is no longer the current one.
    """
    if not _within_rate_limit(client_ip):
        raise AccessDenied(
            "Too many calls started from this address; wait a minute and try again.",
            "rate_limited",
            "rate_limit_error",
        )
    widget_key = (
        WidgetKey.objects.select_related("agent__tenant")
        .filter(key=publishable_key, revoked_at__isnull=True)
        .first()
    )
    if widget_key is None:
        raise AccessDenied("Unknown or revoked publishable key.", "invalid_publishable_key")
    if agent_id and agent_id != widget_key.agent.public_id:
        raise AccessDenied("This publishable key belongs to another agent.", "agent_mismatch")
    if not origin or not widget_key.allows_origin(origin):
        raise AccessDenied(
            "This web page's origin is not allowed to use this agent.", "origin_not_allowed"
        )
    if consent and consent not in ConsentScope.values:
        raise AccessDenied(
            "consent must be one of: " + ", ".join(ConsentScope.values) + ".", "invalid_consent"
        )
    return mint(
        tenant=widget_key.agent.tenant,
        agent=widget_key.agent,
        channel=Channel.WIDGET,
        consent=consent or ConsentScope.NONE,
        consent_method=ConsentMethod.WIDGET,
        origin=origin,
        consent_version=consent_version,
    )


def _within_rate_limit(client_ip: str) -> bool:
    minute = int(timezone.now().timestamp() // 60)
    key = f"koe:widget-mint:{client_ip}:{minute}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=120)
        count = 1
    return count <= settings.KOE_WIDGET_TOKENS_PER_MINUTE
