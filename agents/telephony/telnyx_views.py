"""Telnyx's Call Control webhook: a call is ringing on one of a tenant's numbers, and how
the calls Koe placed are getting on.

Telnyx posts every event of the calls on a Call Control application to one URL
(``/v1/telephony/telnyx/webhook``), as JSON signed with Ed25519. The event is routed to
the tenant's number it is for, and its signature checked with the public key of the
account that number belongs to before anything is stored. An incoming ``call.initiated``
is admitted and answered with the ``answer`` command, which forks the call to Koe's media
stream (``telnyx_stream``) with the single-use stream token in its URL; a closed line is
rejected unanswered. On a number whose consent is given by key press, the call is
answered without the stream; its ``call.answered`` has the agent's consent text read and a
key gathered, and its ``call.gather.ended`` records the answer (1 agrees) and starts the
stream, or hangs up when the agent takes calls only with consent and the caller declined.
Telnyx gets its 200 at once: the command follows from a worker thread.

An event of a call Koe placed (found by its call_control_id, or before Dial's answer came
back, by the ``client_state`` Koe gave it) is checked with that call's account key, then
moves the call's status (``call.initiated`` ringing, ``call.answered`` in progress,
``call.hangup`` completed, busy, no-answer, canceled or failed by its ``hangup_cause``) or
reports an answering machine as Twilio's detection does (``views.answering_machine``).
Every other event is acknowledged and ignored.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime
from urllib.parse import urlencode

import orjson
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.models import VoicemailAction
from agents.telephony import telnyx
from agents.telephony.admission import (
    LINE_BUSY,
    LineClosed,
    admit,
    consent_answered,
    keypad_consent_prompt,
    route,
)
from agents.telephony.models import (
    Carrier,
    CarrierAccount,
    Direction,
    PhoneCall,
    PhoneCallStatus,
    PhoneConsent,
)
from agents.telephony.progress import record_status
from agents.telephony.views import answering_machine, stream_url

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
    placed = _placed_call(event)
    if placed is not None:
        return _outbound_event(request, event, placed)
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
    if event.direction == telnyx.INCOMING and event.event_type in KEYPAD_EVENTS:
        return _keypad_consent(event, account)
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
    if number.consent == PhoneConsent.DTMF:
        # Answered first; the consent text is read once Telnyx says the call is answered.
        stream: str | None = None
    else:
        stream = telnyx_stream_url(admitted.stream_token)
    telnyx.commands.submit(telnyx.answer(account.auth_token, call_control_id, stream))
    return _done("answered")


# --- consent by key press -----------------------------------------------------------------
KEYPAD_EVENTS = frozenset({telnyx.CALL_ANSWERED, telnyx.CALL_GATHER_ENDED})


def _keypad_consent(event: telnyx.CallEvent, account: CarrierAccount) -> HttpResponse:
    """An incoming call on a key-press number: answered, then its consent gathered."""
    phone_call = (
        PhoneCall.objects.select_related("agent", "phone_number")
        .filter(
            carrier=Carrier.TELNYX,
            direction=Direction.INBOUND,
            carrier_call_id=event.call_control_id[:128],
            phone_number__consent=PhoneConsent.DTMF,
        )
        .first()
    )
    if phone_call is None or not event.call_control_id:
        return _done("ignored")
    call_control_id = phone_call.carrier_call_id
    if event.event_type == telnyx.CALL_ANSWERED:
        if phone_call.consent_answered_at is not None:
            return _done("duplicate")
        prompt = keypad_consent_prompt(phone_call)
        telnyx.commands.submit(telnyx.gather_consent(account.auth_token, call_control_id, prompt))
        return _done("gathering")
    if event.status == "call_hangup":
        return _done("ignored")  # the caller hung up while the text was read
    if phone_call.consent_answered_at is not None:
        return _done("duplicate")
    digits = event.digits if event.status == "valid" else ""  # no key: no consent
    try:
        token = consent_answered(phone_call, digits)
    except LineClosed as closed:
        logger.info("telnyx call ended code=%s call=%s", closed.code, phone_call.public_id)
        telnyx.commands.submit(telnyx.hang_up(account.auth_token, call_control_id))
        return _done("declined")
    stream = telnyx_stream_url(token)
    telnyx.commands.submit(telnyx.streaming_start(account.auth_token, call_control_id, stream))
    return _done("streaming")


# --- the calls Koe placed ---------------------------------------------------------------------
HUMAN_RESULTS = frozenset({"human", "human_residence", "human_business"})
DETECTION_ENDED = frozenset(
    {telnyx.MACHINE_DETECTION_ENDED, telnyx.MACHINE_PREMIUM_DETECTION_ENDED}
)
GREETING_ENDED = frozenset({telnyx.MACHINE_GREETING_ENDED, telnyx.MACHINE_PREMIUM_GREETING_ENDED})
# A call that never connected ends with the reason it did not; one that did is completed.
UNANSWERED_HANGUPS: dict[str, str] = {
    "normal_clearing": PhoneCallStatus.COMPLETED,
    "time_limit": PhoneCallStatus.COMPLETED,
    "user_busy": PhoneCallStatus.BUSY,
    "call_rejected": PhoneCallStatus.BUSY,
    "timeout": PhoneCallStatus.NO_ANSWER,
    "no_answer": PhoneCallStatus.NO_ANSWER,
    "originator_cancel": PhoneCallStatus.CANCELED,
}
PENDING_PREFIX = "pending:"


def _placed_call(event: telnyx.CallEvent) -> PhoneCall | None:
    """The outbound call an event is about: by call_control_id, or by the client_state Dial
    set, while Koe still waits for Dial's answer. None for anything else."""
    if event.event_type == telnyx.CALL_INITIATED and event.direction == telnyx.INCOMING:
        return None
    calls = PhoneCall.objects.select_related(
        "phone_number__carrier_account", "call", "agent", "tenant"
    ).filter(carrier=Carrier.TELNYX, direction=Direction.OUTBOUND)
    if event.call_control_id:
        found = calls.filter(carrier_call_id=event.call_control_id[:128]).first()
        if found is not None:
            return found
    try:
        public_id = base64.b64decode(event.client_state, validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    if not public_id:
        return None
    return calls.filter(public_id=public_id, carrier_call_id__startswith=PENDING_PREFIX).first()


def _outbound_event(
    request: HttpRequest, event: telnyx.CallEvent, phone_call: PhoneCall
) -> HttpResponse:
    if phone_call.phone_number is None:
        return _done("ignored")
    signed = telnyx.is_signed(
        phone_call.phone_number.carrier_account.webhook_public_key,
        request.body,
        request.headers.get(telnyx.TIMESTAMP_HEADER, ""),
        request.headers.get(telnyx.SIGNATURE_HEADER, ""),
    )
    if not signed:
        logger.warning("telnyx webhook refused: bad signature call=%s", phone_call.public_id)
        return _error(
            403, "invalid_signature", "The request's telnyx-signature-ed25519 is not valid."
        )
    if phone_call.carrier_call_id.startswith(PENDING_PREFIX) and event.call_control_id:
        # Before Dial's answer: the call's id at Telnyx is known from here on.
        phone_call.carrier_call_id = event.call_control_id[:128]
        PhoneCall.objects.filter(pk=phone_call.pk).update(
            carrier_call_id=phone_call.carrier_call_id
        )
    kind = event.event_type
    if kind == telnyx.CALL_INITIATED:
        record_status(phone_call, PhoneCallStatus.RINGING)
    elif kind == telnyx.CALL_ANSWERED:
        record_status(phone_call, PhoneCallStatus.IN_PROGRESS)
    elif kind == telnyx.CALL_HANGUP:
        record_status(phone_call, _hangup_status(phone_call, event), duration=_duration(event))
    elif kind in DETECTION_ENDED or kind in GREETING_ENDED:
        _machine_detected(phone_call, event)
    else:
        logger.info("telnyx event %s ignored call=%s", kind, phone_call.public_id)
        return _done("ignored")
    return _done("recorded")


def _hangup_status(phone_call: PhoneCall, event: telnyx.CallEvent) -> str:
    if phone_call.status == PhoneCallStatus.IN_PROGRESS:
        return PhoneCallStatus.COMPLETED
    return UNANSWERED_HANGUPS.get(event.hangup_cause, PhoneCallStatus.FAILED)


def _duration(event: telnyx.CallEvent) -> str:
    """Seconds from start_time to end_time (ISO 8601), as Twilio's CallDuration; or ""."""
    try:
        seconds = (
            datetime.fromisoformat(event.end_time) - datetime.fromisoformat(event.start_time)
        ).total_seconds()
    except (TypeError, ValueError):
        return ""
    return str(round(seconds)) if seconds >= 0 else ""


def _machine_detected(phone_call: PhoneCall, event: telnyx.CallEvent) -> None:
    """Telnyx's verdict in Twilio's AnsweredBy words, so one rule serves both carriers."""
    if event.event_type in GREETING_ENDED:
        answered_by = "machine_end_beep" if event.result == "beep_detected" else "machine_end_other"
    elif event.result in HUMAN_RESULTS:
        answered_by = "human"
    elif event.result == "machine":
        answered_by = "machine_start"
        agent = phone_call.agent
        if agent is not None and agent.voicemail_action == VoicemailAction.LEAVE_MESSAGE:
            # The message goes after the greeting: call.machine.greeting.ended says when.
            PhoneCall.objects.filter(pk=phone_call.pk).update(answered_by=answered_by)
            return
    elif event.result == "fax_detected":
        answered_by = "fax"
    else:
        answered_by = "unknown"  # not_sure, silence: the call goes on
    answering_machine(phone_call, answered_by)
