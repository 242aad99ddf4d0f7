"""The carriers' webhooks: a call is ringing on one of a tenant's numbers, and how the
calls Koe placed are getting on.

Twilio posts its voice webhook here (the number's "A call comes in" URL). The request is
checked against the auth token of the account the number belongs to before anything is
stored; the answer is TwiML that connects the call to Koe's media stream, carrying a
single-use stream token, or says the line is closed and hangs up. Status and
answering-machine callbacks are checked the same way, against the call's account.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.models import VoicemailAction
from agents.telephony import twilio
from agents.telephony.admission import (
    LineClosed,
    admit,
    consent_answered,
    keypad_consent_prompt,
    phone_call_direction,
    route,
)
from agents.telephony.greeting import HUMAN, UNKNOWN
from agents.telephony.models import Carrier, CarrierAccount, Direction, PhoneCall, PhoneConsent
from agents.telephony.progress import record_status

MACHINE_END = "machine_end"  # the AnsweredBy words of a greeting's end: beep, silence, other
logger = logging.getLogger("koe.telephony")


def public_url(request: HttpRequest) -> str:
    """The URL the carrier requested, as it wrote it: Koe's public address (it may sit
    behind a proxy or a tunnel) and this request's path and query."""
    return settings.KOE_SITE_URL + request.get_full_path()


# Where each carrier's media stream connects (koe/routing.py serves them).
TWILIO_STREAM_PATH = "/v1/telephony/twilio/stream"


def stream_url(path: str) -> str:
    scheme, _, rest = settings.KOE_SITE_URL.partition("://")
    return ("wss" if scheme == "https" else "ws") + "://" + rest + path


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(
        {"error": {"type": "invalid_request_error", "code": code, "message": message}},
        status=status,
    )


def _twiml(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/xml; charset=utf-8")


def _form(request: HttpRequest) -> dict[str, str]:
    return {name: request.POST.get(name, "") for name in request.POST}


def _signed(request: HttpRequest, params: dict[str, str], account: CarrierAccount) -> bool:
    """Whether Twilio signed this request with the account's auth token."""
    given = request.headers.get(twilio.SIGNATURE_HEADER, "")
    return twilio.is_signed(account.auth_token, public_url(request), params, given)


def _bad_signature() -> JsonResponse:
    return _error(403, "invalid_signature", "The request's X-Twilio-Signature is not valid.")


@csrf_exempt
@require_POST
def twilio_voice(request: HttpRequest) -> HttpResponse:
    params = _form(request)
    number = route(Carrier.TWILIO, params.get("To", ""))
    if number is None:
        return _error(404, "unknown_number", "No agent answers this number here.")
    account = number.carrier_account
    if not _signed(request, params, account) or params.get("AccountSid") != account.account_sid:
        logger.warning("twilio webhook refused: bad signature number=%s", number.public_id)
        return _bad_signature()
    if not params.get("CallSid"):
        return _error(400, "missing_call_sid", "The request has no CallSid.")
    try:
        admitted = admit(
            number,
            carrier_call_id=params.get("CallSid", "")[:128],
            remote_number=params.get("From", ""),
            direction=phone_call_direction(params.get("Direction", "inbound")),
        )
    except LineClosed as closed:
        logger.info("twilio call refused code=%s number=%s", closed.code, number.public_id)
        return _twiml(twilio.say_and_hang_up(closed.message))
    if number.consent == PhoneConsent.DTMF:
        # Consent first, by key press; the stream's token comes with the answer.
        prompt = keypad_consent_prompt(admitted.phone_call)
        action = settings.KOE_SITE_URL + reverse("twilio_consent")
        return _twiml(twilio.gather_key(prompt, action))
    stream = stream_url(TWILIO_STREAM_PATH)
    return _twiml(twilio.connect_stream(stream, {"token": admitted.stream_token}))


@csrf_exempt
@require_POST
def twilio_consent(request: HttpRequest) -> HttpResponse:
    """The key the caller pressed at the consent prompt (``<Gather>``'s action): the call
    goes on to its media stream, with or without consent, or ends if the agent needs it."""
    phone_call, refusal = _call_for_callback(request)
    if phone_call is None:
        assert refusal is not None
        return refusal
    try:
        token = consent_answered(phone_call, request.POST.get("Digits", ""))
    except LineClosed as closed:
        logger.info(
            "twilio call ended at consent code=%s call=%s", closed.code, phone_call.public_id
        )
        return _twiml(twilio.say_and_hang_up(closed.message))
    return _twiml(twilio.connect_stream(stream_url(TWILIO_STREAM_PATH), {"token": token}))


def _call_for_callback(request: HttpRequest) -> tuple[PhoneCall | None, HttpResponse | None]:
    """The Twilio call a signed callback is about, or the answer refusing the callback."""
    params = _form(request)
    phone_call = (
        PhoneCall.objects.select_related("phone_number__carrier_account", "call", "agent")
        .filter(carrier=Carrier.TWILIO, carrier_call_id=params.get("CallSid", ""))
        .first()
    )
    if phone_call is None or phone_call.phone_number is None:
        return None, _error(404, "unknown_call", "No such call here.")
    if not _signed(request, params, phone_call.phone_number.carrier_account):
        logger.warning("twilio callback refused: bad signature call=%s", phone_call.public_id)
        return None, _bad_signature()
    return phone_call, None


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    """A call's progress at Twilio (StatusCallback): queued → ringing → in-progress →
    completed, or busy / no-answer / failed / canceled."""
    phone_call, refusal = _call_for_callback(request)
    if phone_call is None:
        assert refusal is not None
        return refusal
    record_status(
        phone_call,
        request.POST.get("CallStatus", ""),
        duration=request.POST.get("CallDuration", ""),
        answered_by=request.POST.get("AnsweredBy", ""),
    )
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_amd(request: HttpRequest) -> HttpResponse:
    """Twilio's answering-machine detection (AsyncAmdStatusCallback): a machine answered
    an outbound call, so the agent leaves its message after the beep, or hangs up."""
    phone_call, refusal = _call_for_callback(request)
    if phone_call is None:
        assert refusal is not None
        return refusal
    answering_machine(phone_call, request.POST.get("AnsweredBy", ""))
    return HttpResponse(status=204)


def answering_machine(phone_call: PhoneCall, answered_by: str) -> None:
    """Record who answered (Twilio's AnsweredBy words; Telnyx's verdicts and Koe's own
    check, ``greeting.py``, are put in them) and, for anything but a person, tell the call:
    after a machine's greeting the agent leaves its voicemail message, if it has one to
    leave; otherwise it hangs up. A machine already acted on is not acted on again."""
    answered_by = answered_by[:32]
    acted = PhoneCall.objects.filter(pk=phone_call.pk, answered_by__startswith=MACHINE_END)
    if acted.exists():
        return  # Koe's own check, or the carrier, found the end of the greeting first
    PhoneCall.objects.filter(pk=phone_call.pk).update(answered_by=answered_by)
    message = voicemail_message(phone_call, answered_by)
    if phone_call.call is not None and message is not None:
        async_to_sync(get_channel_layer().group_send)(
            phone_call.call.group_name, {"type": "call.voicemail", "message": message}
        )


def voicemail_message(phone_call: PhoneCall, answered_by: str) -> str | None:
    """What the agent does for ``answered_by``: None for a person (or no verdict), else
    the message to leave after the greeting ("" to hang up)."""
    if answered_by in (HUMAN, UNKNOWN):
        return None
    agent = phone_call.agent
    if (
        agent is not None
        and agent.voicemail_action == VoicemailAction.LEAVE_MESSAGE
        and answered_by.startswith(MACHINE_END)
    ):
        return agent.voicemail_message
    return ""


def own_check_wanted(call_id: int) -> bool:
    """Whether Koe listens for an answering machine itself: an outbound call that no
    verdict has reached yet."""
    return PhoneCall.objects.filter(
        call_id=call_id, direction=Direction.OUTBOUND, answered_by=""
    ).exists()


def own_verdict(call_id: int, answered_by: str) -> str | None:
    """Koe's own check decided: kept if the carrier has said nothing yet; returns what the
    call does (``voicemail_message``), or None."""
    if not PhoneCall.objects.filter(call_id=call_id, answered_by="").update(
        answered_by=answered_by
    ):
        return None  # the carrier's verdict came first, and was acted on
    phone_call = PhoneCall.objects.select_related("agent").get(call_id=call_id)
    return voicemail_message(phone_call, answered_by)
