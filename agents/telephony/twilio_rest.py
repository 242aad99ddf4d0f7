"""Twilio's REST API for calls: place one, and change one that is live.

https://www.twilio.com/docs/voice/api/call-resource: ``POST /2010-04-01/Accounts/{sid}/
Calls.json`` creates a call (To, From, and Twiml or Url; StatusCallback with the
StatusCallbackEvent list; MachineDetection with AsyncAmd for answering-machine detection
reported to AsyncAmdStatusCallback); ``POST …/Calls/{CallSid}.json`` redirects a live call
to new TwiML or hangs it up (Status=completed). HTTP Basic auth with the account SID and
auth token. The base URL is ``KOE_TWILIO_API_URL``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from django.conf import settings

from agents.telephony.models import CarrierAccount

logger = logging.getLogger("koe.telephony")

API_VERSION = "2010-04-01"
FormValue = str | Sequence[str]


class CarrierError(Exception):
    """The carrier refused or could not be reached; ``message`` says why, for the tenant."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _request(account: CarrierAccount, path: str, form: Mapping[str, FormValue]) -> dict[str, Any]:
    url = f"{settings.KOE_TWILIO_API_URL}/{API_VERSION}/Accounts/{account.account_sid}/{path}"
    try:
        response = httpx.post(
            url,
            data=dict(form),
            auth=(account.account_sid, account.auth_token),
            timeout=settings.KOE_CARRIER_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as error:
        logger.warning("twilio unreachable account=%s: %r", account.public_id, error)
        raise CarrierError("Twilio could not be reached; please try again.") from error
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400:
        message = body.get("message") if isinstance(body, dict) else None
        logger.warning(
            "twilio refused account=%s status=%s: %s",
            account.public_id,
            response.status_code,
            message,
        )
        raise CarrierError(
            f"Twilio refused: {message or response.status_code}", response.status_code
        )
    return body if isinstance(body, dict) else {}


def create_call(account: CarrierAccount, form: Mapping[str, FormValue]) -> dict[str, Any]:
    return _request(account, "Calls.json", form)


def update_call(account: CarrierAccount, call_sid: str, form: Mapping[str, str]) -> dict[str, Any]:
    return _request(account, f"Calls/{call_sid}.json", form)
