"""The test console: talk to an agent from its dashboard page and watch the Realtime events.

The page embeds the same widget a tenant's site does; instead of a publishable key it gets
its session token from ``console_token``, minted server-side for the logged-in member, so
testing an agent needs no widget key and no allowed origin.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from agents.models import Agent
from agents.realtime import tokens
from agents.realtime.access import AccessDenied
from agents.realtime.api import widget_settings
from calls.models import Channel, ConsentMethod
from dashboard.access import require, tenant_view
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import get_for_tenant_or_404

# Refusals that are not the caller's mistake answer 429, a prompt that changed after the page
# showed it 409; the rest are bad requests.
REFUSAL_STATUS = {"budget_exceeded": 429, "concurrent_call_limit": 429, "consent_changed": 409}
EXPECTED_BODY = 'Send {"consent": "none" | "transcript" | "recording", "consent_version": n}.'


def _agent_or_404(membership: Membership, agent_id: str) -> Agent:
    return get_for_tenant_or_404(
        Agent.objects.select_related("current_version"), membership.tenant, public_id=agent_id
    )


# Console calls are real calls (stored, counted in usage and the budget): members who build
# agents may place them; auditors, who change nothing, may not.
@tenant_view()
def agent_console(request: HttpRequest, membership: Membership, agent_id: str) -> HttpResponse:
    agent = _agent_or_404(membership, agent_id)
    require(membership, Permission.EDIT)
    return render(
        request,
        "dashboard/agents/console.html",
        {
            "nav": "agents",
            "agent": agent,
            "widget_config": widget_settings(agent),
            "token_url": reverse("dashboard:agent_console_token", args=[agent.public_id]),
        },
    )


@require_POST
@tenant_view()
def console_token(request: HttpRequest, membership: Membership, agent_id: str) -> HttpResponse:
    """A single-use session token for a console call; body ``{"consent": "...",
    "consent_version": n}``.

    ``consent_version`` is the version of the consent text the page showed (its widget
    settings carry it): the call records those words, and if the prompt has changed since
    the page was rendered the answer is refused with 409 ``consent_changed``, with the
    current settings under ``config`` so the page can ask again in the new words.

    The token is bound to the dashboard page's origin (the WebSocket's Origin must match)
    and the call is labelled with the member who placed it.
    """
    agent = _agent_or_404(membership, agent_id)
    require(membership, Permission.EDIT)
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        return _error(400, "The body must be JSON.", "invalid_json")
    consent = body.get("consent", "") if isinstance(body, dict) else None
    if not isinstance(consent, str):
        return _error(400, EXPECTED_BODY, "invalid_json")
    consent_version = body.get("consent_version")
    # bool is an int in Python; a JSON true is not a version number.
    if consent_version is not None and (
        isinstance(consent_version, bool)
        or not isinstance(consent_version, int)
        or consent_version < 1
    ):
        return _error(
            400,
            "consent_version must be the positive integer the console's settings gave.",
            "invalid_consent_version",
        )
    origin = request.headers.get("Origin") or f"{request.scheme}://{request.get_host()}"
    try:
        minted = tokens.mint(
            tenant=membership.tenant,
            agent=agent,
            channel=Channel.WIDGET,
            consent=consent or "none",
            consent_method=ConsentMethod.WIDGET,
            end_user=f"console:{request.user.get_username()}",
            origin=origin,
            consent_version=consent_version,
        )
    except AccessDenied as denied:
        status = REFUSAL_STATUS.get(denied.code, 400)
        if denied.code == "consent_changed":
            return _error(status, denied.message, denied.code, config=widget_settings(agent))
        return _error(status, denied.message, denied.code)
    return JsonResponse(minted.response())


def _error(status: int, message: str, code: str, **extra: Any) -> JsonResponse:
    error_type = "rate_limit_error" if status == 429 else "invalid_request_error"
    return JsonResponse(
        {"error": {"type": error_type, "code": code, "message": message}, **extra}, status=status
    )
