"""Calls Koe places: an agent rings a number through the tenant's carrier account.

Through Twilio, the call is asked for with TwiML that connects it, once answered, to
Koe's media stream with a single-use token (so from then on it is a phone call like any
other); its progress comes back on signed status callbacks, and the carrier's
answering-machine detection on its own callback (``views``). Through Telnyx, the Dial
command carries the stream URL (the token in its query) itself, and progress and
answering-machine detection come as Call Control webhook events (``telnyx_views``).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent, VoicemailAction
from agents.realtime.access import AccessDenied, active_calls, check_budget
from agents.telephony import telnyx, twilio
from agents.telephony.models import (
    Carrier,
    Direction,
    PhoneCall,
    PhoneCallStatus,
    PhoneConsent,
    PhoneNumber,
)
from agents.telephony.telnyx_views import telnyx_stream_url
from agents.telephony.twilio_rest import CarrierError, create_call
from agents.telephony.views import TWILIO_STREAM_PATH, stream_url
from foundation.api import InvalidRequest
from foundation.ids import random_token
from foundation.phone_numbers import validate_e164
from tenancy.models import Tenant
from tenancy.scoping import for_tenant

logger = logging.getLogger("koe.telephony")

# Ringing (up to RING_SECONDS) and answering come before the stream connects.
RING_SECONDS = 60
OUTBOUND_STREAM_TOKEN_TTL = timedelta(seconds=RING_SECONDS + 120)
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
MAX_METADATA_BYTES = 4096


class OutboundRefused(Exception):
    """The call cannot be placed now (budget, capacity, the carrier): an HTTP error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class OutboundCall:
    agent_id: str
    to: str
    from_number: str
    end_user: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def outbound_problem(number: PhoneNumber) -> str:
    """Why calls cannot be placed from ``number`` (its carrier account), or ""."""
    account = number.carrier_account
    if account.carrier == Carrier.TELNYX and not account.connection_id:
        # Dial needs the Call Control application the call goes through.
        return "This number's Telnyx account has no connection_id (Call Control application)."
    if account.carrier not in (Carrier.TWILIO, Carrier.TELNYX):
        return "Outbound calls go through Twilio or Telnyx numbers."
    return ""


def _checked(tenant: Tenant, request: OutboundCall) -> tuple[Agent, PhoneNumber]:
    errors: dict[str, list[str]] = {}
    agent = (
        for_tenant(Agent, tenant).filter(public_id=request.agent_id).first()
        if request.agent_id
        else None
    )
    if agent is None:
        errors["agent"] = [f"No agent {request.agent_id!r} in this tenant."]
    elif agent.current_version_id is None:
        errors["agent"] = ["This agent has no saved configuration yet."]
    number = (
        for_tenant(PhoneNumber, tenant)
        .select_related("carrier_account")
        .filter(number=request.from_number)
        .first()
    )
    if number is None:
        errors["from"] = ["Not one of this tenant's phone numbers."]
    else:
        problem = outbound_problem(number)
        if problem:
            errors["from"] = [problem]
    try:
        validate_e164(request.to)
    except ValidationError as error:
        errors["to"] = list(error.messages)
    if len(request.end_user) > 200:
        errors["end_user"] = ["At most 200 characters."]
    if len(orjson.dumps(request.metadata)) > MAX_METADATA_BYTES:
        errors["metadata"] = [f"At most {MAX_METADATA_BYTES} bytes of JSON."]
    if (
        agent is not None
        and number is not None
        and not errors
        and agent.consent_required
        and number.consent == PhoneConsent.NONE
    ):
        errors["from"] = [
            "This agent takes calls only with consent: use a number whose consent is 'disclosed'."
        ]
    if errors:
        raise InvalidRequest(errors)
    assert agent is not None and number is not None
    return agent, number


def place_call(tenant: Tenant, request: OutboundCall) -> PhoneCall:
    """Ask the carrier to ring ``request.to`` from one of the tenant's numbers."""
    agent, number = _checked(tenant, request)
    try:
        check_budget(tenant)
    except AccessDenied as denied:
        raise OutboundRefused(429, denied.code, denied.message) from denied
    if active_calls(tenant) >= tenant.max_concurrent_calls:
        raise OutboundRefused(
            429,
            "concurrent_call_limit",
            f"All {tenant.max_concurrent_calls} concurrent calls are in use; try again later.",
        )
    token, stored = PhoneCall.new_stream_token(OUTBOUND_STREAM_TOKEN_TTL)
    phone_call = PhoneCall.objects.create(
        tenant=tenant,
        phone_number=number,
        agent=agent,
        carrier=number.carrier_account.carrier,
        carrier_call_id="pending:" + random_token(24),
        direction=Direction.OUTBOUND,
        status=PhoneCallStatus.QUEUED,
        remote_number=request.end_user or request.to,
        metadata=request.metadata,
        **stored,
    )
    if phone_call.carrier == Carrier.TELNYX:
        return _dial_telnyx(phone_call, agent, number, request.to, token)
    site = settings.KOE_SITE_URL
    form: dict[str, Any] = {
        "To": request.to,
        "From": number.number,
        "Twiml": twilio.connect_stream(stream_url(TWILIO_STREAM_PATH), {"token": token}),
        "Timeout": str(RING_SECONDS),
        "StatusCallback": site + reverse("twilio_status"),
        "StatusCallbackMethod": "POST",
        "StatusCallbackEvent": list(STATUS_EVENTS),
        # Answering machines: reported while the call goes on (AsyncAmd); waiting for
        # the end of the greeting only when there is a message to leave after the beep.
        "MachineDetection": "DetectMessageEnd"
        if agent.voicemail_action == VoicemailAction.LEAVE_MESSAGE
        else "Enable",
        "AsyncAmd": "true",
        "AsyncAmdStatusCallback": site + reverse("twilio_amd"),
        "AsyncAmdStatusCallbackMethod": "POST",
    }
    try:
        placed = create_call(number.carrier_account, form)
    except CarrierError as error:
        PhoneCall.objects.filter(pk=phone_call.pk).update(status=PhoneCallStatus.FAILED)
        raise OutboundRefused(502, "carrier_error", error.message) from error
    phone_call.carrier_call_id = str(placed.get("sid") or phone_call.carrier_call_id)
    status = str(placed.get("status") or PhoneCallStatus.QUEUED)
    phone_call.status = status if status in PhoneCallStatus.values else PhoneCallStatus.QUEUED
    phone_call.save(update_fields=["carrier_call_id", "status", "updated_at"])
    logger.info("outbound call placed tenant=%s call=%s", tenant.public_id, phone_call.public_id)
    return phone_call


def _dial_telnyx(
    phone_call: PhoneCall, agent: Agent, number: PhoneNumber, to: str, token: str
) -> PhoneCall:
    """Place the call with Telnyx's Dial: answered, it streams to Koe at once."""
    account = number.carrier_account
    body: dict[str, Any] = {
        "connection_id": account.connection_id,
        "to": to,
        "from": number.number,
        "timeout_secs": RING_SECONDS,
        "stream_url": telnyx_stream_url(token),
        "stream_track": "inbound_track",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
        # "greeting_end" reports the machine, then the end of its greeting (a beep or
        # silence): the moment to leave a message. "detect" only says human or machine.
        "answering_machine_detection": "greeting_end"
        if agent.voicemail_action == VoicemailAction.LEAVE_MESSAGE
        else "detect",
        "webhook_url": settings.KOE_SITE_URL + reverse("telnyx_webhook"),
        # The call's id at Koe rides on every event: one that comes before Dial's answer
        # (which carries the call_control_id) still finds its call.
        "client_state": base64.b64encode(phone_call.public_id.encode()).decode(),
        "command_id": f"koe-dial-{phone_call.public_id}"[:128],
    }
    try:
        placed = telnyx.dial(account.auth_token, body, settings.KOE_CARRIER_TIMEOUT_SECONDS)
    except telnyx.DialRefused as error:
        PhoneCall.objects.filter(pk=phone_call.pk).update(status=PhoneCallStatus.FAILED)
        raise OutboundRefused(502, "carrier_error", error.message) from error
    phone_call.carrier_call_id = str(placed["call_control_id"])[:128]
    # Only the id: a webhook may have moved the status on already.
    PhoneCall.objects.filter(pk=phone_call.pk).update(
        carrier_call_id=phone_call.carrier_call_id, updated_at=timezone.now()
    )
    phone_call.refresh_from_db(fields=["status", "updated_at"])
    logger.info(
        "outbound call placed tenant=%s call=%s carrier=telnyx",
        phone_call.tenant.public_id,
        phone_call.public_id,
    )
    return phone_call
