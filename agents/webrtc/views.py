"""``POST /v1/realtime/calls``: OpenAI's WebRTC entry point, for browsers and servers.

As OpenAI's: the body is the caller's SDP offer, either alone (``Content-Type:
application/sdp``, a browser with its session token as ``Authorization: Bearer ek_…``, or
a server with its secret key and ``?model=<agent id>``) or as the multipart form the SDKs
send (``sdp``, and ``session``: JSON whose ``model`` names the agent). The answer is
``201`` with the SDP answer and ``Location: /v1/realtime/calls/<call id>``. Refusals are
OpenAI-style JSON errors; browsers on a tenant's site get CORS (the session token's own
origin binding is what admits them).
"""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from agents.realtime.access import Caller
from agents.webrtc.offers import OfferRefused, answer

CORS_METHODS = "POST, OPTIONS"


@csrf_exempt
async def realtime_calls(request: HttpRequest) -> HttpResponse:
    origin = request.headers.get("Origin", "")
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204), origin)
    if request.method != "POST":
        return _cors(_error(405, "Use POST with the SDP offer.", "method_not_allowed"), origin)
    try:
        offer, session = _offer_and_session(request)
        caller = _caller(request, session)
        answered = await answer(offer, caller)
    except OfferRefused as refused:
        refusal = _error(refused.status, refused.message, refused.code, refused.error_type)
        return _cors(refusal, origin)
    response = HttpResponse(answered.sdp, status=201, content_type="application/sdp")
    response["Location"] = f"/v1/realtime/calls/{answered.call_id}"
    return _cors(response, origin)


def _offer_and_session(request: HttpRequest) -> tuple[str, dict[str, object]]:
    content_type = request.content_type or ""
    if content_type == "multipart/form-data":
        offer = request.POST.get("sdp", "")
        raw_session = request.POST.get("session", "")
        if not raw_session:
            return offer, {}
        try:
            session = orjson.loads(raw_session)
        except orjson.JSONDecodeError:
            raise OfferRefused("session must be JSON.", "invalid_session") from None
        if not isinstance(session, dict):
            raise OfferRefused("session must be a JSON object.", "invalid_session")
        return offer, session
    if content_type not in ("application/sdp", "text/plain", ""):
        raise OfferRefused(
            "Send the SDP offer as application/sdp, or as the multipart form's 'sdp' field.",
            "unsupported_content_type",
        )
    try:
        return request.body.decode(), {}
    except UnicodeDecodeError:
        raise OfferRefused("The SDP offer must be text.", "invalid_sdp") from None


def _caller(request: HttpRequest, session: dict[str, object]) -> Caller:
    authorization = request.headers.get("Authorization", "")
    secret = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    model = session.get("model", "")
    return Caller(
        secret=secret,
        agent_id=str(model or request.GET.get("model", "")),
        origin=request.headers.get("Origin", ""),
        consent=request.GET.get("consent", ""),
        consent_method=request.GET.get("consent_method", ""),
        end_user=request.GET.get("end_user", ""),
    )


def _error(status: int, message: str, code: str, error_type: str = "") -> JsonResponse:
    if not error_type:
        error_type = "rate_limit_error" if status == 429 else "invalid_request_error"
    body = {"error": {"type": error_type, "code": code, "message": message, "param": None}}
    response = JsonResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = "5"
    return response


def _cors(response: HttpResponse, origin: str) -> HttpResponse:
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = CORS_METHODS
        response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response["Access-Control-Expose-Headers"] = "Location"
        response["Access-Control-Max-Age"] = "600"
        response["Vary"] = "Origin"
    return response
