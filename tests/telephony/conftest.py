"""A tenant with a Twilio account and a number answered by an agent, and helpers to ring it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from agents.models import Agent
from agents.telephony.models import CarrierAccount, PhoneConsent, PhoneNumber
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.realtime.conftest import scripted_provider  # noqa: F401 (a fixture, shared)

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
