"""/v1/carrier_accounts and /v1/phone_numbers: a tenant's carrier accounts and numbers."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from agents.telephony.models import CarrierAccount, PhoneNumber
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN


def call_api(world: TenantWorld, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    client = Client()
    return getattr(client, method)(
        f"/v1{path}",
        data=body if body is not None else None,
        content_type="application/json",
        headers={"Authorization": f"Bearer {world.secret}"},
    )


def add_account(world: TenantWorld, **fields: str) -> dict[str, Any]:
    body = {"name": "Main", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, **fields}
    response = call_api(world, "post", "/carrier_accounts", body)
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def test_an_auth_token_is_stored_encrypted_and_never_shown(tenant_a: TenantWorld) -> None:
    created = add_account(tenant_a)
    assert created["auth_token_hint"] == AUTH_TOKEN[-4:]
    listed = call_api(tenant_a, "get", "/carrier_accounts").json()
    assert AUTH_TOKEN not in str(created) and AUTH_TOKEN not in str(listed)
    account = CarrierAccount.objects.get(public_id=created["id"])
    assert account.auth_token == AUTH_TOKEN
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT auth_token FROM telephony_carrieraccount WHERE id = %s", [account.pk]
        )
        (stored,) = cursor.fetchone()
    assert AUTH_TOKEN not in stored


def test_a_number_is_attached_to_an_agent_and_shows_its_webhook(tenant_a: TenantWorld) -> None:
    account = add_account(tenant_a)
    agent = AgentFactory(tenant=tenant_a.tenant)
    response = call_api(
        tenant_a,
        "post",
        "/phone_numbers",
        {"number": "+14155550100", "carrier_account": account["id"], "agent": agent.public_id},
    )
    assert response.status_code == 201, response.content
    number = response.json()
    assert number["agent"] == agent.public_id
    assert number["voice_url"].endswith("/v1/telephony/twilio/voice")
    assert number["consent"] == "none"

    changed = call_api(
        tenant_a, "patch", f"/phone_numbers/{number['id']}", {"agent": None, "label": "Front desk"}
    ).json()
    assert changed["agent"] is None and changed["label"] == "Front desk"
    assert call_api(tenant_a, "delete", f"/phone_numbers/{number['id']}").status_code == 204
    assert not PhoneNumber.objects.exists()


@pytest.mark.parametrize("bad", ["4155550100", "+0123456789", "+1 415 555 0100", "+1"])
def test_a_number_not_in_e164_gets_a_field_error(tenant_a: TenantWorld, bad: str) -> None:
    account = add_account(tenant_a)
    response = call_api(
        tenant_a, "post", "/phone_numbers", {"number": bad, "carrier_account": account["id"]}
    )
    assert response.status_code == 400
    assert "number" in response.json()["error"]["fields"]


def test_another_tenants_account_and_agent_cannot_be_used(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    account_a = add_account(tenant_a)
    agent_a = AgentFactory(tenant=tenant_a.tenant)
    response = call_api(
        tenant_b,
        "post",
        "/phone_numbers",
        {"number": "+14155550100", "carrier_account": account_a["id"], "agent": agent_a.public_id},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) >= {"carrier_account", "agent"}
    assert call_api(tenant_b, "get", f"/carrier_accounts/{account_a['id']}").status_code == 404
    assert call_api(tenant_b, "delete", f"/carrier_accounts/{account_a['id']}").status_code == 404
    assert CarrierAccount.objects.filter(public_id=account_a["id"]).exists()


def test_a_foreign_number_answers_404(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    account = add_account(tenant_a)
    number = call_api(
        tenant_a,
        "post",
        "/phone_numbers",
        {"number": "+14155550100", "carrier_account": account["id"]},
    ).json()
    for method in ("get", "patch", "delete"):
        response = call_api(tenant_b, method, f"/phone_numbers/{number['id']}", {})
        assert response.status_code == 404, method
    assert call_api(tenant_b, "get", "/phone_numbers").json()["count"] == 0


def test_an_account_in_use_cannot_be_deleted(tenant_a: TenantWorld) -> None:
    account = add_account(tenant_a)
    call_api(
        tenant_a,
        "post",
        "/phone_numbers",
        {"number": "+14155550100", "carrier_account": account["id"]},
    )
    response = call_api(tenant_a, "delete", f"/carrier_accounts/{account['id']}")
    assert response.status_code == 400
    assert "numbers still use" in response.json()["error"]["fields"]["id"][0]


def test_a_rotated_auth_token_replaces_the_old_one(tenant_a: TenantWorld) -> None:
    account = add_account(tenant_a)
    changed = call_api(
        tenant_a, "patch", f"/carrier_accounts/{account['id']}", {"auth_token": "new-token-9876"}
    ).json()
    assert changed["auth_token_hint"] == "9876"
    assert CarrierAccount.objects.get(public_id=account["id"]).auth_token == "new-token-9876"
