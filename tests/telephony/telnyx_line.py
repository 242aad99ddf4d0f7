"""A tenant's Telnyx account and a number answered by an agent, and a signed call.initiated."""

from __future__ import annotations

from typing import Any

from django.test import Client

from agents.telephony.models import Carrier, CarrierAccount, PhoneConsent, PhoneNumber
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.fakes.telnyx import TelnyxKeys, call_event, encode, new_call_control_id, webhook_headers
from tests.telephony.conftest import CALLER, NUMBER, Line

API_KEY = "KEY0123456789ABCDEF_telnyx-api-key-a"
WEBHOOK = "/v1/telephony/telnyx/webhook"
# One key pair per Telnyx account, as the portal gives each account its own public key.
KEYS_A = TelnyxKeys.generate()
KEYS_B = TelnyxKeys.generate()


def make_telnyx_line(
    world: TenantWorld,
    *,
    number: str = NUMBER,
    keys: TelnyxKeys = KEYS_A,
    api_key: str = API_KEY,
    consent: str = PhoneConsent.NONE,
    **agent_fields: object,
) -> Line:
    account = CarrierAccount.objects.create(
        tenant=world.tenant,
        name="Telnyx",
        carrier=Carrier.TELNYX,
        auth_token=api_key,
        webhook_public_key=keys.public_key,
    )
    agent = AgentFactory(tenant=world.tenant, **agent_fields)
    phone_number = PhoneNumber.objects.create(
        tenant=world.tenant, number=number, carrier_account=account, agent=agent, consent=consent
    )
    return Line(account, phone_number, agent)


def post_event(
    event: dict[str, Any],
    *,
    keys: TelnyxKeys = KEYS_A,
    timestamp: int | None = None,
    signature: str | None = None,
    body: bytes | None = None,
) -> Any:
    """POST a webhook through Django's test client, signed as Telnyx signs it."""
    raw = encode(event)
    headers = webhook_headers(keys, raw, timestamp=timestamp, signature=signature)
    headers.pop("Content-Type")
    sent = body if body is not None else raw
    return Client().post(WEBHOOK, data=sent, content_type="application/json", headers=headers)


def ring(
    *,
    to: str = NUMBER,
    call_control_id: str | None = None,
    keys: TelnyxKeys = KEYS_A,
    **options: Any,
) -> tuple[str, Any]:
    """A signed call.initiated for an incoming call to ``to``: (call_control_id, response)."""
    call_control_id = call_control_id or new_call_control_id()
    event = call_event(
        "call.initiated", call_control_id=call_control_id, from_number=CALLER, to_number=to
    )
    return call_control_id, post_event(event, keys=keys, **options)
