"""From a carrier's "a call is ringing" to a live call: the number's route, the single-use
stream token that carries the call to its media stream, and the call's grant.

Synchronous (database) code: the webhook views call it directly, the stream transports
on ``foundation.call_threads``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.consent import consent_text_for
from agents.realtime.access import AccessDenied, CallGrant, check_budget, start_call
from agents.telephony.models import (
    Direction,
    PhoneCall,
    PhoneConsent,
    PhoneNumber,
)
from calls.models import Channel, ConsentMethod, ConsentScope

# On the phone every provider speaks the carriers' G.711 μ-law at 8 kHz: the audio passes
# through untouched, never transcoded on the way.
PHONE_AUDIO_FORMAT = "g711_ulaw"


class LineClosed(Exception):
    """The number cannot take this call; ``message`` is said to the caller."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


LINE_CLOSED = "Sorry, this line cannot take calls right now. Goodbye."
LINE_BUSY = "Sorry, all our lines are busy right now. Please call again later. Goodbye."
CONSENT_DECLINED = "We can only take this call with your agreement. Goodbye."
# Said after the agent's consent text on a number whose consent is given by key press.
KEYPAD_CHOICES = "Press 1 to agree, or 2 to continue without it."
KEYPAD_CHOICES_REQUIRED = "Press 1 to agree and continue."


def keypad_consent_prompt(phone_call: PhoneCall) -> str:
    """What the caller hears before pressing a key: the agent's versioned consent text
    and the choices."""
    agent = phone_call.agent
    assert agent is not None
    choices = KEYPAD_CHOICES_REQUIRED if agent.consent_required else KEYPAD_CHOICES
    return f"{consent_text_for(agent).text} {choices}"


def consent_answered(phone_call: PhoneCall, digits: str) -> str:
    """The caller answered the consent prompt by key press (1: yes; anything else or
    nothing: no). Recorded with a fresh stream token for the call to go on, unless the
    agent takes calls only with consent and the caller declined (LineClosed)."""
    agent = phone_call.agent
    if agent is None or phone_call.stream_started_at is not None:
        raise LineClosed(LINE_CLOSED, "no_agent")
    given = digits.strip()[:1] == "1"
    if not given and agent.consent_required:
        raise LineClosed(CONSENT_DECLINED, "consent_declined")
    token, stored = PhoneCall.new_stream_token()
    PhoneCall.objects.filter(pk=phone_call.pk).update(
        consent_given=given, consent_answered_at=timezone.now(), **stored
    )
    return token


def route(carrier: str, number: str) -> PhoneNumber | None:
    """The number a carrier's call is for, with its tenant, account and agent."""
    return (
        PhoneNumber.objects.select_related("tenant", "carrier_account", "agent")
        .filter(number=number, carrier_account__carrier=carrier)
        .first()
    )


@dataclass(frozen=True)
class Admitted:
    stream_token: str
    phone_call: PhoneCall


def admit(
    number: PhoneNumber, *, carrier_call_id: str, remote_number: str, direction: str
) -> Admitted:
    """A call for ``number`` may proceed to its media stream: recorded (once per carrier
    call id; a retried webhook gets a fresh token) with a single-use stream token."""
    agent = number.agent
    if agent is None or agent.current_version_id is None:
        raise LineClosed(LINE_CLOSED, "no_agent")
    if agent.consent_required and number.consent == PhoneConsent.NONE:
        raise LineClosed(LINE_CLOSED, "consent_required")
    try:
        check_budget(number.tenant)
    except AccessDenied as denied:
        raise LineClosed(LINE_BUSY, denied.code) from denied
    token, stored = PhoneCall.new_stream_token()
    fields = {
        "tenant": number.tenant,
        "phone_number": number,
        "agent": agent,
        "direction": direction,
        "remote_number": remote_number[:32],
        **stored,
    }
    try:
        with transaction.atomic():
            phone_call, created = PhoneCall.objects.get_or_create(
                carrier=number.carrier_account.carrier,
                carrier_call_id=carrier_call_id,
                defaults=fields,
            )
    except IntegrityError:  # the same webhook twice at once: the other one won
        phone_call, created = (
            PhoneCall.objects.get(
                carrier=number.carrier_account.carrier, carrier_call_id=carrier_call_id
            ),
            False,
        )
    if not created:
        if phone_call.tenant_id != number.tenant_id or phone_call.stream_started_at is not None:
            raise LineClosed(LINE_CLOSED, "call_already_connected")
        PhoneCall.objects.filter(pk=phone_call.pk).update(**stored)
    return Admitted(token, phone_call)


def open_phone_call(stream_token: str) -> CallGrant:
    """The media stream presented its token: open the call (within the tenant's cap and
    budget), keep its consent as the number's legal basis says, and join the two records."""
    phone_call = PhoneCall.claim_stream(stream_token) if stream_token else None
    if phone_call is None:
        raise AccessDenied(
            "Unknown, expired or already used stream token.",
            "invalid_stream_token",
            "authentication_error",
        )
    agent, number = phone_call.agent, phone_call.phone_number
    if agent is None or number is None:
        raise AccessDenied("This number no longer reaches an agent.", "no_agent")
    details: dict[str, object] = {
        "channel": Channel.PHONE,
        "end_user_ref": phone_call.remote_number,
        "consent_scope": ConsentScope.NONE,
        "consent_method": ConsentMethod.NONE,
        "carrier": phone_call.carrier,
        "carrier_direction": phone_call.direction,
    }
    disclosure = ""
    if number.consent == PhoneConsent.DTMF:
        shown = consent_text_for(agent)
        given = bool(phone_call.consent_given)
        scope = ConsentScope.RECORDING if agent.recording_offered else ConsentScope.TRANSCRIPT
        details.update(
            consent_scope=scope if given else ConsentScope.NONE,
            consent_method=ConsentMethod.DTMF,
            consent_at=phone_call.consent_answered_at if given else None,
            consent_text=shown.text,
            consent_version=shown.version,
        )
    elif number.consent == PhoneConsent.DISCLOSED:
        shown = consent_text_for(agent)
        disclosure = shown.text
        details.update(
            consent_scope=ConsentScope.RECORDING
            if agent.recording_offered
            else ConsentScope.TRANSCRIPT,
            consent_method=ConsentMethod.DISCLOSED,
            consent_at=timezone.now(),
            consent_text=shown.text,
            consent_version=shown.version,
        )
    grant = start_call(phone_call.tenant, agent, details, by_browser=True)
    # The caller's number now lives on the call only (end_user_ref).
    PhoneCall.objects.filter(pk=phone_call.pk).update(call_id=grant.call_id, remote_number="")
    return phone_grant(grant, disclosure)


def phone_grant(grant: CallGrant, disclosure: str = "") -> CallGrant:
    """A grant as a phone call runs it: μ-law both ways, the disclosure said before the
    greeting, the greeting always said (the caller dialled and waits to hear someone)."""
    config = grant.config
    greeting = " ".join(part for part in (disclosure.strip(), config.greeting) if part)
    config = dataclasses.replace(config, audio_format=PHONE_AUDIO_FORMAT, greeting=greeting)
    return dataclasses.replace(grant, config=config, greets=True, shows_tool_calls=False)


def phone_call_direction(direction: str) -> str:
    """Twilio's Direction parameter (inbound, outbound-api, outbound-dial) as Koe's."""
    return Direction.INBOUND if direction.startswith("inbound") else Direction.OUTBOUND
