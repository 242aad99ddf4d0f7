"""A Telnyx carrier account through the API and the dashboard: its public key is checked when
it is saved, and its numbers' voice_url is the Call Control webhook."""

from __future__ import annotations

import pytest

from agents.telephony.models import CarrierAccount
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.fakes.telnyx import TelnyxKeys
from tests.telephony.test_numbers_api import call_api

KEYS = TelnyxKeys.generate()
API_KEY = "KEY0123456789ABCDEF_telnyx"


def test_a_telnyx_account_keeps_its_public_key_and_its_numbers_point_at_the_webhook(
    tenant_a: TenantWorld,
) -> None:
    body = {
        "name": "Telnyx",
        "carrier": "telnyx",
        "auth_token": API_KEY,
        "webhook_public_key": KEYS.public_key,
        "connection_id": "1684641123236054244",
    }
    response = call_api(tenant_a, "post", "/carrier_accounts", body)
    assert response.status_code == 201, response.content
    account = response.json()
    assert account["carrier"] == "telnyx" and account["account_sid"] == ""
    assert account["webhook_public_key"] == KEYS.public_key
    assert account["connection_id"] == "1684641123236054244"
    assert API_KEY not in str(account) and account["auth_token_hint"] == API_KEY[-4:]

    agent = AgentFactory(tenant=tenant_a.tenant)
    number = call_api(
        tenant_a,
        "post",
        "/phone_numbers",
        {"number": "+14155550100", "carrier_account": account["id"], "agent": agent.public_id},
    ).json()
    assert number["voice_url"].endswith("/v1/telephony/telnyx/webhook")

    rotated = TelnyxKeys.generate().public_key
    changed = call_api(
        tenant_a, "patch", f"/carrier_accounts/{account['id']}", {"webhook_public_key": rotated}
    )
    assert changed.status_code == 200 and changed.json()["webhook_public_key"] == rotated


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"carrier": "telnyx"}, "webhook_public_key"),  # no key
        ({"carrier": "telnyx", "webhook_public_key": "c2hvcnQ="}, "webhook_public_key"),
        ({"carrier": "telnyx", "webhook_public_key": "not base64!"}, "webhook_public_key"),
        ({"carrier": "twilio"}, "account_sid"),  # Twilio still needs its SID
    ],
)
def test_an_account_without_what_its_carrier_signs_with_is_refused(
    tenant_a: TenantWorld, fields: dict[str, str], field: str
) -> None:
    body = {"name": "Main", "auth_token": API_KEY, **fields}
    response = call_api(tenant_a, "post", "/carrier_accounts", body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not CarrierAccount.objects.exists()


def test_the_dashboard_adds_a_telnyx_account(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("owner")
    page = client.get("/carrier-accounts/new/").content.decode()
    assert 'value="telnyx"' in page and "Public key (Telnyx)" in page
    response = client.post(
        "/carrier-accounts/new/",
        {
            "name": "Telnyx",
            "carrier": "telnyx",
            "account_sid": "",
            "auth_token": API_KEY,
            "webhook_public_key": KEYS.public_key,
            "connection_id": "",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    account = CarrierAccount.objects.get()
    assert (account.carrier, account.webhook_public_key) == ("telnyx", KEYS.public_key)
    assert account.auth_token == API_KEY
