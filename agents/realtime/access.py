"""Who may open a realtime call with which agent, and the call record it opens.

Synchronous (database) code: transports run it on ``foundation.call_threads``.
Every refusal is an AccessDenied with a machine code and a sentence for the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.config import AgentConfig
from agents.consent import consent_text_for
from agents.models import Agent
from agents.realtime.providers import ProviderCredentials
from billing import budgets
from calls import liveness
from calls.control import stale_before
from calls.models import (
    CallSession,
    CallStatus,
    Channel,
    ConsentMethod,
    ConsentScope,
    SessionToken,
)
from foundation.text import storable
from retention.policies import Kind, TenantPolicies
from tenancy.models import ApiKey, ProviderCredential, Tenant, hash_secret

BUDGET_EXCEEDED = (
    "This service has reached its spending limit for the month; calls are unavailable until "
    "the limit is raised or the month ends."
)


class AccessDenied(Exception):
    def __init__(self, message: str, code: str, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_type = error_type


@dataclass(frozen=True)
class CallGrant:
    """Everything the broker needs to run one call, resolved before it accepts."""

    call_id: int
    call_public_id: str
    tenant_id: int
    tenant_public_id: str
    agent_public_id: str
    config: AgentConfig
    provider: str
    model: str
    credentials: ProviderCredentials | None
    stores_transcript: bool
    allow_overrides: bool
    strict: bool = False  # refuse a client's change of a protected setting
    # Session events keep the instructions and tool definitions (a tenant's own server,
    # or an agent that opted in); a browser with a session token does not see them.
    shows_configuration: bool = True
    # The client may declare functions of its own (which it runs) in session.update.
    client_functions: bool = False
    # The agent's greeting is said as the call opens (API callers only if the agent says).
    greets: bool = True
    # The agent's tools are shown running as mcp_call items (else not at all).
    shows_tool_calls: bool = False

    @property
    def group_name(self) -> str:
        return f"call.{self.call_public_id}"


@dataclass(frozen=True)
class Caller:
    """What the connecting client presented."""

    secret: str = ""  # Authorization: Bearer sk_... or ek_...
    session_token: str = ""  # ek_... from the subprotocol or query string
    agent_id: str = ""  # ?model=
    origin: str = ""
    consent: str = ""  # ?consent= (server-to-server calls)
    consent_method: str = ""  # ?consent_method=spoken (the caller said yes out loud)
    end_user: str = ""  # ?end_user=


def open_call(caller: Caller) -> CallGrant:
    token_value = caller.session_token or (caller.secret if caller.secret.startswith("ek_") else "")
    if token_value:
        tenant, agent, details = _from_session_token(token_value, caller)
        by_browser = True
    elif caller.secret:
        tenant, agent, details = _from_secret_key(caller)
        by_browser = False
    else:
        raise AccessDenied(
            "Missing credentials: pass a secret key as 'Authorization: Bearer sk_...' or a "
            "session token (subprotocol 'openai-insecure-api-key.<token>' or ?token=).",
            "missing_api_key",
            "authentication_error",
        )
    return start_call(tenant, agent, details, by_browser=by_browser)


def _from_session_token(value: str, caller: Caller) -> tuple[Tenant, Agent, dict[str, Any]]:
    token = (
        SessionToken.objects.select_related("agent__current_version", "tenant")
        .filter(token_hash=hash_secret(value))
        .first()
    )
    if token is None:
        raise AccessDenied(
            "Unknown session token.", "invalid_session_token", "authentication_error"
        )
    if token.used_at is not None:
        raise AccessDenied(
            "This session token was already used; request a new one for each call.",
            "session_token_used",
            "authentication_error",
        )
    if token.expires_at <= timezone.now():
        raise AccessDenied(
            "This session token has expired; request a new one and connect at once.",
            "session_token_expired",
            "authentication_error",
        )
    if caller.agent_id and caller.agent_id != token.agent.public_id:
        raise AccessDenied(
            "This session token was minted for another agent.",
            "session_token_agent_mismatch",
            "authentication_error",
        )
    if token.origin and caller.origin != token.origin:
        raise AccessDenied(
            "This session token is not valid from this web page's origin.",
            "origin_not_allowed",
            "authentication_error",
        )
    if SessionToken.redeem(value) is None:
        raise AccessDenied(
            "This session token was already used; request a new one for each call.",
            "session_token_used",
            "authentication_error",
        )
    return (
        token.tenant,
        token.agent,
        {
            "channel": token.channel,
            "end_user_ref": token.end_user_ref,
            "consent_scope": token.consent_scope,
            "consent_method": token.consent_method,
            "consent_at": token.consent_at,
            "consent_text": token.consent_text,
            "consent_version": token.consent_version,
        },
    )


def _from_secret_key(caller: Caller) -> tuple[Tenant, Agent, dict[str, Any]]:
    key = ApiKey.authenticate(caller.secret)
    if key is None:
        raise AccessDenied(
            "Invalid API key: unknown or revoked.", "invalid_api_key", "authentication_error"
        )
    if not caller.agent_id:
        raise AccessDenied("Name the agent: /v1/realtime?model=<agent id>.", "missing_model")
    agent = (
        Agent.objects.select_related("current_version")  # one round trip for both
        .filter(tenant=key.tenant, public_id=caller.agent_id)
        .first()
    )
    if agent is None:
        raise AccessDenied(f"No agent {caller.agent_id!r} in this tenant.", "model_not_found")
    consent = parse_consent(caller.consent, agent)
    shown = consent_text_for(agent) if caller.consent else None
    return (
        key.tenant,
        agent,
        {
            "channel": Channel.API,
            "end_user_ref": storable(caller.end_user[:200]),
            "consent_scope": consent,
            "consent_method": parse_consent_method(caller.consent_method)
            if caller.consent
            else ConsentMethod.NONE,
            "consent_at": timezone.now() if caller.consent else None,
            "consent_text": shown.text if shown else "",
            "consent_version": shown.version if shown else None,
        },
    )


# How a tenant's backend may say its caller consented: set by the API (the default), or
# said out loud (a phone menu, an operator) and reported by the backend.
BACKEND_CONSENT_METHODS = (ConsentMethod.API, ConsentMethod.SPOKEN)


def parse_consent_method(value: str) -> str:
    if not value:
        return ConsentMethod.API
    if value not in BACKEND_CONSENT_METHODS:
        raise AccessDenied(
            "consent_method must be one of: " + ", ".join(BACKEND_CONSENT_METHODS) + ".",
            "invalid_consent_method",
        )
    return value


def parse_consent(value: str, agent: Agent) -> str:
    if value and value not in ConsentScope.values:
        raise AccessDenied(
            "consent must be one of: " + ", ".join(ConsentScope.values) + ".", "invalid_consent"
        )
    if agent.consent_required and value in ("", ConsentScope.NONE):
        raise AccessDenied(
            "This agent takes calls only with the caller's consent to a transcript "
            "(consent=transcript or consent=recording).",
            "consent_required",
        )
    if not value:
        return ConsentScope.NONE
    # Recording consent counts only where the agent offers recording.
    if value == ConsentScope.RECORDING and not agent.recording_offered:
        return ConsentScope.TRANSCRIPT
    return value


def start_call(
    tenant: Tenant, agent: Agent, details: dict[str, Any], *, by_browser: bool = False
) -> CallGrant:
    """Open the call record for an admitted caller (``details``: channel, end user and
    consent), within the tenant's budget and its concurrent-call cap, exactly."""
    version = agent.current_version
    if version is None:
        raise AccessDenied("This agent has no saved configuration yet.", "agent_not_ready")
    # Read once, typed, with the tenant's time zone for the built-in voice.
    config = AgentConfig.from_version(version.config, tenant_time_zone=tenant.time_zone)
    check_budget(tenant)
    policies = TenantPolicies.load(tenant)  # read before the lock, which is kept short
    with transaction.atomic():
        # One tenant row lock serialises the concurrency check across processes.
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if active_calls(locked) >= locked.max_concurrent_calls:
            raise AccessDenied(
                f"This service is busy: all {locked.max_concurrent_calls} concurrent calls are in "
                "use. Please try again in a moment.",
                "concurrent_call_limit",
                "rate_limit_error",
            )
        call = CallSession.objects.create(
            tenant=locked,
            agent=agent,
            keeps_transcript=policies.days_for(Kind.TRANSCRIPT, agent.pk) != 0,
            keeps_recording=policies.days_for(Kind.RECORDING, agent.pk) != 0,
            agent_version=version,
            agent_name=agent.name,
            version_number=version.number,
            provider=config.provider,
            model=config.model,
            server_instance=liveness.INSTANCE,
            **details,
        )
    return CallGrant(
        call_id=call.pk,
        call_public_id=call.public_id,
        tenant_id=tenant.pk,
        tenant_public_id=tenant.public_id,
        agent_public_id=agent.public_id,
        config=config,
        provider=config.provider,
        model=config.model,
        credentials=_credentials(tenant, config),
        stores_transcript=call.stores_transcript,
        allow_overrides=config.client_may_override,
        strict=config.strict_client_settings,
        shows_configuration=not by_browser or config.show_configuration_to_browsers,
        client_functions=config.client_functions == "all"
        or (config.client_functions == "servers" and not by_browser),
        greets=by_browser or config.greet_api_callers,
        shows_tool_calls=config.tool_calls_shown == "hosted",
    )


def check_budget(tenant: Tenant) -> None:
    """Refuse when a hard monthly budget is spent (a cache read, mostly no query)."""
    if budgets.budget_of(tenant.pk).refuses_new_calls:
        raise AccessDenied(BUDGET_EXCEEDED, "budget_exceeded", "rate_limit_error")


def active_calls(tenant: Tenant) -> int:
    # Calls whose process died without ending them must not block new calls: those of a
    # process that stopped beating, and any older than a live session can be.
    return (
        CallSession.objects.filter(
            tenant=tenant, status=CallStatus.ACTIVE, started_at__gte=stale_before()
        )
        .exclude(liveness.held_by_lost_instance())
        .count()
    )


def _credentials(tenant: Tenant, config: AgentConfig) -> ProviderCredentials | None:
    credential_id = config.credential
    if not credential_id:
        return None
    credential = ProviderCredential.objects.filter(tenant=tenant, public_id=credential_id).first()
    if credential is None:
        return None
    return ProviderCredentials(api_key=credential.api_key, endpoint=credential.azure_endpoint)
