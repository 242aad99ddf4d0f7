"""Telnyx's Call Control webhook: a call is ringing on one of a tenant's numbers.

Telnyx posts every event of the calls on a Call Control application to one URL
(``/v1/telephony/telnyx/webhook``), as JSON signed with Ed25519. The event is routed to
the tenant's number it is for, and its signature checked with the public key of the
account that number belongs to before anything is stored. An incoming ``call.initiated``
is admitted and answered with the ``answer`` command, which forks the call to Koe's media
stream (``telnyx_stream``) with the single-use stream token in its URL; a closed line is
rejected unanswered. Telnyx gets its 200 at once: the command follows from a worker
thread. Every other event is acknowledged and ignored (outbound calls are not handled here).
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import orjson
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.telephony import telnyx
from agents.telephony.admission import LINE_BUSY, LineClosed, admit, route
from agents.telephony.models import Carrier, Direction, PhoneCall
from agents.telephony.views import stream_url

logger = logging.getLogger("koe.telephony")

# Where Telnyx's media stream connects (koe/routing.py serves it).
TELNYX_STREAM_PATH = "/v1/telephony/telnyx/stream"


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(
        {"error": {"type": "invalid_request_error", "code": code, "message": message}},
        status=status,
    )


def _done(status: str) -> JsonResponse:
    return JsonResponse({"status": status})


def telnyx_stream_url(token: str) -> str:
    return stream_url(TELNYX_STREAM_PATH) + "?" + urlencode({"token": token})


@csrf_exempt
@require_POST
def telnyx_webhook(request: HttpRequest) -> HttpResponse:
    body = request.body
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _error(400, "invalid_json", "The request body is not JSON.")
    event = telnyx.parse_event(document)
    if event is None:
        return _error(400, "invalid_event", "The request is not a Telnyx Call Control event.")
    number = route(Carrier.TELNYX, event.own_number)
    if number is None:
        if event.event_type == telnyx.CALL_INITIATED:
            return _error(404, "unknown_number", "No agent answers this number here.")
        # Nothing to act on, nothing stored: an event Koe cannot place (streaming.started
        # names no number) is acknowledged, or Telnyx would retry it.
        logger.info("telnyx event %s ignored: no number", event.event_type)
        return _done("ignored")
    account = number.carrier_account
    signed = telnyx.is_signed(
        account.webhook_public_key,
        body,
        request.headers.get(telnyx.TIMESTAMP_HEADER, ""),
        request.headers.get(telnyx.SIGNATURE_HEADER, ""),
    )
    if not signed:
        logger.warning("telnyx webhook refused: bad signature number=%s", number.public_id)
        return _error(
            403, "invalid_signature", "The request's telnyx-signature-ed25519 is not valid."
        )
    if event.event_type != telnyx.CALL_INITIATED or event.direction != telnyx.INCOMING:
        logger.info("telnyx event %s ignored number=%s", event.event_type, number.public_id)
        return _done("ignored")
    if not event.call_control_id:
        return _error(400, "missing_call_control_id", "The event has no call_control_id.")
    call_control_id = event.call_control_id[:128]
    # Telnyx delivers a webhook more than once at times: the first one's answer carries the
    # live token, and a second admission would replace it.
    if PhoneCall.objects.filter(carrier=Carrier.TELNYX, carrier_call_id=call_control_id).exists():
        logger.info("telnyx call.initiated repeated number=%s; ignored", number.public_id)
        return _done("duplicate")
    try:
        admitted = admit(
            number,
            carrier_call_id=call_control_id,
            remote_number=event.from_number,
            direction=Direction.INBOUND,
        )
    except LineClosed as closed:
        logger.info("telnyx call refused code=%s number=%s", closed.code, number.public_id)
        cause = telnyx.USER_BUSY if closed.message == LINE_BUSY else telnyx.CALL_REJECTED
        telnyx.commands.submit(telnyx.reject(account.auth_token, call_control_id, cause))
        return _done("rejected")
    stream = telnyx_stream_url(admitted.stream_token)
    telnyx.commands.submit(telnyx.answer(account.auth_token, call_control_id, stream))
    return _done("answered")
