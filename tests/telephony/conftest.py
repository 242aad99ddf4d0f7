"""A tenant with a Twilio account and a number answered by an agent, and helpers to ring it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agents.models import Agent
from agents.telephony.models import CarrierAccount, PhoneConsent, PhoneNumber
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.fakes.telnyx import FakeTelnyxRest
from tests.realtime.conftest import scripted_provider  # noqa: F401 (a fixture, shared)
from tests.realtime.doubles import ScriptedConnection

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "twilio-auth-token-a-0123456789abcdef"
NUMBER = "+14155550100"
CALLER = "+14155550199"


@dataclass
class Line:
    account: CarrierAccount
    number: PhoneNumber
    agent: Agent


def make_line(
    world: TenantWorld,
    *,
    number: str = NUMBER,
    account_sid: str = ACCOUNT_SID,
    auth_token: str = AUTH_TOKEN,
    consent: str = PhoneConsent.NONE,
    **agent_fields: object,
) -> Line:
    account = CarrierAccount.objects.create(
        tenant=world.tenant, name="Main", account_sid=account_sid, auth_token=auth_token
    )
    agent = AgentFactory(tenant=world.tenant, **agent_fields)
    phone_number = PhoneNumber.objects.create(
        tenant=world.tenant, number=number, carrier_account=account, agent=agent, consent=consent
    )
    return Line(account, phone_number, agent)


@pytest.fixture
def line(tenant_a: TenantWorld) -> Line:
    return make_line(tenant_a, greeting="Hello, Acme Dental.")


@pytest.fixture
def telnyx_api(settings: Any) -> Iterator[FakeTelnyxRest]:
    """Telnyx's REST API, faked on loopback (tests/fakes/telnyx.py), as Koe's API URL."""
    from agents.telephony import telnyx
    from tests.telephony.telnyx_line import API_KEY

    with FakeTelnyxRest(API_KEY) as fake:
        settings.KOE_TELNYX_API_URL = fake.base_url
        yield fake
        telnyx.commands.wait()


def voicemail_responder(event: dict[str, Any], connection: ScriptedConnection) -> None:
    """A provider that cancels the greeting when asked and speaks the voicemail message."""
    if event["type"] == "response.cancel":  # the greeting, cut short
        connection.push({"type": "response.done", "response": {"id": "resp_greeting",
                         "status": "cancelled", "output": []}})  # fmt: skip
    instructions = (event.get("response") or {}).get("instructions") or ""
    if event["type"] == "response.create" and "answering machine" in instructions:
        connection.speak("resp_voicemail", "Please call Acme Dental back.", seconds=0.3)
