"""HTTP endpoints that mint realtime session tokens.

``POST /v1/realtime/client_secrets`` mirrors OpenAI's endpoint for a tenant's backend
(secret key); ``POST /v1/widget/client_secrets`` is the public endpoint the embeddable
widget calls with a publishable key from an allowed origin (CORS answered here).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import Field, Router, Schema
from ninja.errors import HttpError

from agents.consent import consent_text_for
from agents.models import Agent, WidgetKey
from agents.realtime import tokens
from agents.realtime.access import AccessDenied
from calls.control import EndOutcome, request_call_end
from calls.models import CallSession, Channel
from foundation.api import error_response, error_responses, request_tenant
from foundation.http import client_ip

router = Router(tags=["realtime"])

# Refusals that are not a bad request; the rest answer 400.
REFUSAL_STATUS = {
    "rate_limited": 429,
    "budget_exceeded": 429,
    "origin_not_allowed": 403,
    "consent_changed": 409,
}


class ExpiresAfter(Schema):
    anchor: Literal["created_at"] = "created_at"
    seconds: int = 60


class SessionRequest(Schema):
    type: Literal["realtime"] = "realtime"
    model: str  # the agent's id, where OpenAI takes a model name


class ClientSecretRequest(Schema):
    expires_after: ExpiresAfter | None = None
    session: SessionRequest
    consent: Literal["none", "transcript", "recording"] | None = None
    consent_method: Literal["api_flag", "spoken"] = Field(
        "api_flag",
        description="How the caller consented: through your product (api_flag) or out loud "
        "(spoken, e.g. a phone menu), as your backend recorded it.",
    )
    end_user: str = ""


class ClientSecretResponse(Schema):
    value: str
    expires_at: int
    session: dict[str, Any]
    agent: dict[str, str]
    consent: str
    ice_servers: list[dict[str, Any]] = []


@router.post(
    "/client_secrets",
    response={200: ClientSecretResponse, **error_responses(400, 404, 429)},
    summary="Mint a short-lived, single-use session token for a browser",
)
def create_client_secret(
    request: HttpRequest, body: ClientSecretRequest
) -> dict[str, Any] | HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    agent = Agent.objects.filter(tenant=tenant, public_id=body.session.model).first()
    if agent is None:
        raise HttpError(404, f"No agent {body.session.model!r} in this tenant.")
    try:
        minted = tokens.mint(
            tenant=tenant,
            agent=agent,
            channel=Channel.WIDGET,
            consent=body.consent or "",
            consent_method=body.consent_method,
            end_user=body.end_user,
            ttl_seconds=body.expires_after.seconds if body.expires_after else None,
        )
    except AccessDenied as denied:
        return error_response(
            request,
            REFUSAL_STATUS.get(denied.code, 400),
            denied.message,
            code=denied.code,
            error_type=denied.error_type,
        )
    return minted.response()


@router.post(
    "/calls/{call_id}/hangup",
    response={200: None, **error_responses(404, 503)},
    summary="End a live call (WebRTC, WebSocket or phone), as OpenAI's hangup does",
)
def hangup_call(request: HttpRequest, call_id: str) -> HttpResponse:
    call = CallSession.objects.filter(tenant=request_tenant(request), public_id=call_id).first()
    if call is None:
        raise HttpError(404, f"No call {call_id!r} in this tenant.")
    outcome = request_call_end(call, "the API", detail="Hung up through the API.")
    if outcome == EndOutcome.UNREACHABLE:
        return error_response(
            request, 503, "The call could not be reached; try again.", code="unreachable"
        )
    return HttpResponse(status=200)  # also for a call that had ended: the outcome is the same


def _cors(response: HttpResponse, origin: str, methods: str = "POST, OPTIONS") -> HttpResponse:
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = methods
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "600"
        response["Vary"] = "Origin"
    return response


@csrf_exempt
def widget_client_secret(request: HttpRequest) -> HttpResponse:
    """Public: the widget posts {key, agent, consent, consent_version}; the Origin header
    must be allowed. ``consent_version`` is the prompt version the widget showed (its config
    gives it); a stale one is refused with 409 ``consent_changed``, and without one the
    current version is recorded."""
    origin = request.headers.get("Origin", "")
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204), origin)
    if request.method != "POST":
        return _cors(_error(405, "Use POST.", "method_not_allowed"), origin)
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        return _cors(_error(400, "The body must be JSON.", "invalid_json"), origin)
    if not isinstance(body, dict):
        return _cors(_error(400, "The body must be a JSON object.", "invalid_json"), origin)
    fields = {name: body.get(name, "") for name in ("key", "agent", "consent")}
    if not all(isinstance(value, str) for value in fields.values()):
        return _cors(
            _error(400, "key, agent and consent must be strings.", "invalid_request"), origin
        )
    consent_version = body.get("consent_version")
    # bool is an int in Python; a JSON true is not a version number.
    if consent_version is not None and (
        isinstance(consent_version, bool)
        or not isinstance(consent_version, int)
        or consent_version < 1
    ):
        message = "consent_version must be the positive integer the widget config gave."
        return _cors(_error(400, message, "invalid_consent_version"), origin)
    try:
        minted = tokens.mint_for_widget(
            publishable_key=fields["key"],
            agent_id=fields["agent"],
            origin=origin,
            consent=fields["consent"],
            client_ip=client_ip(request),
            consent_version=consent_version,
        )
    except AccessDenied as denied:
        status = REFUSAL_STATUS.get(denied.code, 400)
        # A refused origin gets no CORS grant: the browser keeps the answer from the page.
        response = _error(status, denied.message, denied.code)
        return response if denied.code == "origin_not_allowed" else _cors(response, origin)
    return _cors(JsonResponse(minted.response()), origin)


def widget_settings(agent: Agent) -> dict[str, Any]:
    """What the widget shows before a call: its look and the consent question it must ask.

    The consent text is the current ConsentText version (written on first showing), so the
    words the widget displays are exactly the words a call records; the widget sends the
    version back with its token request.
    """
    shown = consent_text_for(agent)
    return {
        "agent": agent.public_id,
        "name": agent.name,
        "label": agent.widget_label or "Talk to us",
        "color": agent.widget_color,
        "position": agent.widget_position,
        "consent_text": shown.text,
        "consent_version": shown.version,
        "recording_offered": agent.recording_offered,
        "consent_required": agent.consent_required,
    }


def _page_origin(request: HttpRequest) -> str:
    """The calling page's origin. Browsers omit Origin on same-origin GETs, so a request
    without one comes from a page on Koe's own host (or from no browser at all, where an
    Origin header proves nothing anyway): that host must then be an allowed origin."""
    return request.headers.get("Origin") or f"{request.scheme}://{request.get_host()}"


@csrf_exempt
def widget_config(request: HttpRequest) -> HttpResponse:
    """Public: ``GET /v1/widget/config?key=pk_...``, the widget's settings for its agent.

    The same origin rule as minting a token: a page whose origin the key does not list
    gets a 403 and no CORS grant, so a copied snippet does not even render elsewhere.
    """
    origin = request.headers.get("Origin", "")
    methods = "GET, OPTIONS"
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204), origin, methods)
    if request.method != "GET":
        return _cors(_error(405, "Use GET.", "method_not_allowed"), origin, methods)
    key = request.GET.get("key", "")
    if not key:
        message = "Pass the publishable key: /v1/widget/config?key=pk_..."
        return _cors(_error(400, message, "missing_publishable_key"), origin, methods)
    widget_key = (
        WidgetKey.objects.select_related("agent").filter(key=key, revoked_at__isnull=True).first()
    )
    if widget_key is None:
        message = "Unknown or revoked publishable key."
        return _cors(_error(404, message, "invalid_publishable_key"), origin, methods)
    if not widget_key.allows_origin(_page_origin(request)):
        message = "This web page's origin is not allowed to use this agent."
        return _error(403, message, "origin_not_allowed")
    response = JsonResponse(widget_settings(widget_key.agent))
    # Agents' settings change rarely; a minute of caching keeps page views off the database.
    response["Cache-Control"] = "max-age=60"
    response["Vary"] = "Origin"  # the CORS grant differs per page
    return _cors(response, origin, methods)


def _error(status: int, message: str, code: str) -> JsonResponse:
    error_type = "rate_limit_error" if status == 429 else "invalid_request_error"
    return JsonResponse(
        {"error": {"type": error_type, "code": code, "message": message}}, status=status
    )
