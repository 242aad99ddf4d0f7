"""REST API v1 for a tenant's carrier accounts and phone numbers.

``/v1/carrier_accounts``: the tenant's accounts at carriers (the auth token is write-only:
stored encrypted, shown as its last four characters). ``/v1/phone_numbers``: numbers, each
answered by one agent; ``voice_url`` is what to paste as the number's voice webhook.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import ProtectedError
from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status

from agents.models import Agent
from agents.telephony.models import Carrier, CarrierAccount, PhoneConsent, PhoneNumber
from foundation.api import (
    OMITTED,
    InvalidRequest,
    Pagination,
    error_responses,
    full_clean_or_raise,
    page,
    request_tenant,
)
from tenancy.models import Tenant
from tenancy.scoping import for_tenant, get_for_tenant_or_404

router = Router(tags=["telephony"])

# Where each carrier posts its calls: Twilio per number, Telnyx per Call Control application.
VOICE_WEBHOOKS = {Carrier.TWILIO: "twilio_voice", Carrier.TELNYX: "telnyx_webhook"}


# --- carrier accounts -----------------------------------------------------------------------
class CarrierAccountOut(Schema):
    id: str
    name: str
    carrier: Carrier
    account_sid: str
    auth_token_hint: str = Field(description="The auth token's last four characters.")
    webhook_public_key: str = Field(
        description="Telnyx: the public key its webhooks are signed with."
    )
    connection_id: str = Field(description="Telnyx: the Call Control application's id.")
    created_at: datetime
    updated_at: datetime


class CarrierAccountList(Schema):
    items: list[CarrierAccountOut]
    count: int
    limit: int
    offset: int


class CarrierAccountCreate(Schema):
    name: str
    carrier: Carrier = Carrier.TWILIO
    account_sid: str = Field("", description="Twilio: the account SID (required for Twilio).")
    auth_token: str = Field(
        description="Stored encrypted; never shown again. Twilio: the auth token; Telnyx: an "
        "API key."
    )
    webhook_public_key: str = Field(
        "", description="Telnyx: the public key (base64) from its portal (required for Telnyx)."
    )
    connection_id: str = Field("", description="Telnyx: the Call Control application's id.")


class CarrierAccountPatch(Schema):
    name: str = Field(OMITTED)
    account_sid: str = Field(OMITTED)
    webhook_public_key: str = Field(OMITTED)
    connection_id: str = Field(OMITTED)
    auth_token: str = Field(OMITTED, description="A new auth token (after rotating it).")


def account_json(account: CarrierAccount) -> dict[str, Any]:
    return {
        "id": account.public_id,
        "name": account.name,
        "carrier": account.carrier,
        "account_sid": account.account_sid,
        "auth_token_hint": account.token_hint,
        "webhook_public_key": account.webhook_public_key,
        "connection_id": account.connection_id,
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    }


def _save_account(account: CarrierAccount, changes: dict[str, Any]) -> CarrierAccount:
    for name, value in changes.items():
        setattr(account, name, value.strip() if isinstance(value, str) else value)
    full_clean_or_raise(account)
    account.save()
    return account


@router.get(
    "/carrier_accounts",
    response={200: CarrierAccountList, **error_responses(400)},
    summary="List carrier accounts",
)
def list_carrier_accounts(request: HttpRequest, pagination: Query[Pagination]) -> dict[str, Any]:
    queryset = for_tenant(CarrierAccount, request_tenant(request)).order_by("name", "pk")
    accounts, count = page(queryset, pagination)
    return {
        "items": [account_json(account) for account in accounts],
        "count": count,
        "limit": pagination.limit,
        "offset": pagination.offset,
    }


@router.post(
    "/carrier_accounts",
    response={201: CarrierAccountOut, **error_responses(400)},
    summary="Add a carrier account",
)
def create_carrier_account(request: HttpRequest, body: CarrierAccountCreate) -> Status[Any]:
    account = CarrierAccount(tenant=request_tenant(request))
    return Status(201, account_json(_save_account(account, body.model_dump())))


@router.get(
    "/carrier_accounts/{account_id}",
    response={200: CarrierAccountOut, **error_responses(404)},
    summary="Get a carrier account",
)
def get_carrier_account(request: HttpRequest, account_id: str) -> dict[str, Any]:
    tenant = request_tenant(request)
    return account_json(get_for_tenant_or_404(CarrierAccount, tenant, public_id=account_id))


@router.patch(
    "/carrier_accounts/{account_id}",
    response={200: CarrierAccountOut, **error_responses(400, 404)},
    summary="Change a carrier account (rename, new auth token)",
)
def update_carrier_account(
    request: HttpRequest, account_id: str, body: CarrierAccountPatch
) -> dict[str, Any]:
    tenant = request_tenant(request)
    account = get_for_tenant_or_404(CarrierAccount, tenant, public_id=account_id)
    return account_json(_save_account(account, body.model_dump(exclude_unset=True)))


@router.delete(
    "/carrier_accounts/{account_id}",
    response={204: None, **error_responses(400, 404)},
    summary="Delete a carrier account (once no number uses it)",
)
def delete_carrier_account(request: HttpRequest, account_id: str) -> Status[None]:
    tenant = request_tenant(request)
    account = get_for_tenant_or_404(CarrierAccount, tenant, public_id=account_id)
    try:
        account.delete()
    except ProtectedError as error:
        raise InvalidRequest(
            {"id": ["Phone numbers still use this account: delete or move them first."]}
        ) from error
    return Status(204, None)


# --- phone numbers --------------------------------------------------------------------------
class PhoneNumberOut(Schema):
    id: str
    number: str = Field(description="E.164, e.g. +14155550123.")
    label: str
    carrier_account: str
    agent: str | None = Field(description="The agent that answers; null: the line is closed.")
    consent: PhoneConsent = Field(
        description="none: metadata only; disclosed: the agent's consent text is said before "
        "the greeting and the call keeps its transcript (and recording, where offered)."
    )
    voice_url: str = Field(
        description="Twilio: paste this as the number's voice webhook (HTTP POST). Telnyx: "
        "the Call Control application's webhook URL."
    )
    created_at: datetime
    updated_at: datetime


class PhoneNumberList(Schema):
    items: list[PhoneNumberOut]
    count: int
    limit: int
    offset: int


class PhoneNumberCreate(Schema):
    number: str
    carrier_account: str
    agent: str | None = None
    label: str = ""
    consent: PhoneConsent = PhoneConsent.NONE


class PhoneNumberPatch(Schema):
    agent: str | None = Field(OMITTED)
    label: str = Field(OMITTED)
    consent: PhoneConsent = Field(OMITTED)
    carrier_account: str = Field(OMITTED)


def carrier_webhook_url(carrier: str) -> str:
    """Where a carrier posts the calls of every number of its (the call names the number)."""
    return settings.KOE_SITE_URL + reverse(VOICE_WEBHOOKS[Carrier(carrier)])


def voice_url(number: PhoneNumber) -> str:
    """Where the number's carrier posts its calls (Twilio's for a number not saved yet)."""
    carrier = number.carrier_account.carrier if number.carrier_account_id else Carrier.TWILIO
    return carrier_webhook_url(carrier)


def number_json(number: PhoneNumber) -> dict[str, Any]:
    return {
        "id": number.public_id,
        "number": number.number,
        "label": number.label,
        "carrier_account": number.carrier_account.public_id,
        "agent": number.agent.public_id if number.agent else None,
        "consent": number.consent,
        "voice_url": voice_url(number),
        "created_at": number.created_at,
        "updated_at": number.updated_at,
    }


def _numbers(tenant: Tenant) -> Any:
    return for_tenant(PhoneNumber, tenant).select_related("carrier_account", "agent")


def _save_number(number: PhoneNumber, changes: dict[str, Any], tenant: Tenant) -> PhoneNumber:
    errors: dict[str, list[str]] = {}
    if "carrier_account" in changes:
        account_id = changes.pop("carrier_account")
        account = for_tenant(CarrierAccount, tenant).filter(public_id=account_id).first()
        if account is None:
            errors["carrier_account"] = [f"No carrier account {account_id!r} in this tenant."]
        else:
            number.carrier_account = account
    if "agent" in changes:
        agent_id = changes.pop("agent")
        number.agent = None
        if agent_id is not None:
            agent = for_tenant(Agent, tenant).filter(public_id=agent_id).first()
            if agent is None:
                errors["agent"] = [f"No agent {agent_id!r} in this tenant."]
            number.agent = agent
    for name, value in changes.items():
        setattr(number, name, value.strip() if isinstance(value, str) else value)
    full_clean_or_raise(number, other_errors=errors)
    number.save()
    return number


@router.get(
    "/phone_numbers",
    response={200: PhoneNumberList, **error_responses(400)},
    summary="List phone numbers",
)
def list_phone_numbers(request: HttpRequest, pagination: Query[Pagination]) -> dict[str, Any]:
    numbers, count = page(_numbers(request_tenant(request)).order_by("number"), pagination)
    return {
        "items": [number_json(number) for number in numbers],
        "count": count,
        "limit": pagination.limit,
        "offset": pagination.offset,
    }


@router.post(
    "/phone_numbers",
    response={201: PhoneNumberOut, **error_responses(400)},
    summary="Attach a phone number to an agent",
)
def create_phone_number(request: HttpRequest, body: PhoneNumberCreate) -> Status[Any]:
    tenant = request_tenant(request)
    number = PhoneNumber(tenant=tenant)
    return Status(201, number_json(_save_number(number, body.model_dump(), tenant)))


@router.get(
    "/phone_numbers/{number_id}",
    response={200: PhoneNumberOut, **error_responses(404)},
    summary="Get a phone number",
)
def get_phone_number(request: HttpRequest, number_id: str) -> dict[str, Any]:
    tenant = request_tenant(request)
    return number_json(get_for_tenant_or_404(_numbers(tenant), tenant, public_id=number_id))


@router.patch(
    "/phone_numbers/{number_id}",
    response={200: PhoneNumberOut, **error_responses(400, 404)},
    summary="Change which agent answers a number, its label or consent",
)
def update_phone_number(
    request: HttpRequest, number_id: str, body: PhoneNumberPatch
) -> dict[str, Any]:
    tenant = request_tenant(request)
    number = get_for_tenant_or_404(_numbers(tenant), tenant, public_id=number_id)
    return number_json(_save_number(number, body.model_dump(exclude_unset=True), tenant))


@router.delete(
    "/phone_numbers/{number_id}",
    response={204: None, **error_responses(404)},
    summary="Detach a phone number (its past calls keep their records)",
)
def delete_phone_number(request: HttpRequest, number_id: str) -> Status[None]:
    tenant = request_tenant(request)
    get_for_tenant_or_404(PhoneNumber, tenant, public_id=number_id).delete()
    return Status(204, None)
