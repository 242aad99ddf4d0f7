"""Dashboard pages for phone numbers (editors) and carrier accounts (managers only)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from agents.models import Agent
from agents.telephony.models import CarrierAccount, PhoneConsent, PhoneNumber
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-THE-REAL-TOKEN-7788"
NUMBER = "+14155550123"
VOICE_URL = settings.KOE_SITE_URL + "/v1/telephony/twilio/voice"


def _account(world: TenantWorld, name: str = "Main", **fields: Any) -> CarrierAccount:
    return CarrierAccount.objects.create(
        tenant=world.tenant,
        name=name,
        account_sid=fields.pop("account_sid", ACCOUNT_SID),
        auth_token=fields.pop("auth_token", AUTH_TOKEN),
        **fields,
    )


def _number(
    world: TenantWorld,
    number: str = NUMBER,
    *,
    account: CarrierAccount | None = None,
    agent: Agent | None = None,
    **fields: Any,
) -> PhoneNumber:
    return PhoneNumber.objects.create(
        tenant=world.tenant,
        number=number,
        carrier_account=account or _account(world),
        agent=agent,
        **fields,
    )


def _number_data(
    account: CarrierAccount, agent: Agent | None = None, **changes: str
) -> dict[str, str]:
    return {
        "number": NUMBER,
        "label": "Front desk",
        "carrier_account": account.public_id,
        "agent": agent.public_id if agent else "",
        "consent": PhoneConsent.NONE,
        **changes,
    }


def _account_data(**changes: str) -> dict[str, str]:
    return {
        "name": "Main",
        "carrier": "twilio",
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        **changes,
    }


def _rows(model: type[CarrierAccount] | type[PhoneNumber]) -> list[dict[str, Any]]:
    return list(model.objects.order_by("pk").values())


def _errors(response: Any, field: str) -> str:
    assert response.status_code == 200
    return " ".join(response.context["form"].errors[field])


# --- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "editor"])
def test_editors_add_edit_and_delete_numbers(tenant_a: TenantWorld, role: str) -> None:
    account = _account(tenant_a)
    front, back = AgentFactory(tenant=tenant_a.tenant), AgentFactory(tenant=tenant_a.tenant)
    client = tenant_a.client_for(role)
    assert client.get("/phone-numbers/new/").status_code == 200

    response = client.post(
        "/phone-numbers/new/",
        # Grouping as carriers' consoles show it is accepted and dropped.
        _number_data(account, front, number="+1 415-555-0123"),
        follow=True,
    )
    assert response.redirect_chain == [("/phone-numbers/", 302)]
    number = PhoneNumber.objects.get()
    assert (number.tenant, number.number, number.agent, number.carrier_account) == (
        tenant_a.tenant,
        NUMBER,
        front,
        account,
    )
    html = response.content.decode()
    assert NUMBER in html and front.name in html and "Front desk" in html

    edit = f"/phone-numbers/{number.public_id}/"
    form_html = client.get(edit).content.decode()
    assert f'value="{front.public_id}" selected' in form_html  # the field speaks public ids
    response = client.post(
        edit,
        # The number itself is not editable: another number is another line.
        _number_data(account, back, number="+14155550999", label="Back office"),
    )
    assert response.status_code == 302
    number.refresh_from_db()
    assert (number.number, number.agent, number.label) == (NUMBER, back, "Back office")

    client.post(edit, _number_data(account, None))
    number.refresh_from_db()
    assert number.agent is None
    assert "the line is closed" in client.get("/phone-numbers/").content.decode()

    delete = f"/phone-numbers/{number.public_id}/delete/"
    confirm = client.get(delete)
    assert confirm.status_code == 200 and NUMBER in confirm.content.decode()
    assert PhoneNumber.objects.exists()
    response = client.post(delete, follow=True)
    assert "deleted" in response.content.decode()
    assert not PhoneNumber.objects.exists()


def test_auditors_see_the_numbers_and_change_nothing(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception")
    number = _number(tenant_a, agent=agent, label="Main line")
    client = tenant_a.client_for("auditor")
    html = client.get("/phone-numbers/").content.decode()
    assert NUMBER in html and "Reception" in html and "Main line" in html
    assert 'href="/phone-numbers/new/"' not in html
    assert f'href="/phone-numbers/{number.public_id}/"' not in html
    edit = f"/phone-numbers/{number.public_id}/"
    delete = f"/phone-numbers/{number.public_id}/delete/"
    data = _number_data(number.carrier_account, None, number="+14155550777")
    before = _rows(PhoneNumber)
    assert client.get("/phone-numbers/new/").status_code == 403
    assert client.post("/phone-numbers/new/", data).status_code == 403
    assert client.get(edit).status_code == 403
    assert client.post(edit, data).status_code == 403
    assert client.get(delete).status_code == 403
    assert client.post(delete).status_code == 403
    assert _rows(PhoneNumber) == before


@pytest.mark.parametrize(
    "bad", ["4155550123", "+0415555012", "+1 (415) 555-0123", "+1415555012345678", "+1415abc"]
)
def test_a_number_not_in_e164_is_a_field_error(tenant_a: TenantWorld, bad: str) -> None:
    account = _account(tenant_a)
    response = tenant_a.client_for("editor").post(
        "/phone-numbers/new/", _number_data(account, number=bad)
    )
    html = response.content.decode()
    assert "E.164" in _errors(response, "number")
    assert 'aria-invalid="true"' in html
    assert not PhoneNumber.objects.exists()


def test_a_duplicate_number_gets_a_readable_error(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    _number(tenant_a)
    client = tenant_a.client_for("editor")
    account = CarrierAccount.objects.get()
    response = client.post("/phone-numbers/new/", _number_data(account))
    assert "already one of your phone numbers" in _errors(response, "number")

    # Numbers are unique across Koe; the other tenant learns nothing but that it is taken.
    other = _account(tenant_b)
    response = tenant_b.client_for("editor").post("/phone-numbers/new/", _number_data(other))
    message = _errors(response, "number")
    assert "another organisation" in message
    assert tenant_a.tenant.name not in response.content.decode()
    assert PhoneNumber.objects.count() == 1


def test_an_agent_that_requires_consent_needs_a_disclosed_line(tenant_a: TenantWorld) -> None:
    account = _account(tenant_a)
    agent = AgentFactory(tenant=tenant_a.tenant, consent_required=True)
    client = tenant_a.client_for("editor")
    response = client.post("/phone-numbers/new/", _number_data(account, agent))
    assert "requires consent" in _errors(response, "consent")
    response = client.post(
        "/phone-numbers/new/", _number_data(account, agent, consent=PhoneConsent.DISCLOSED)
    )
    assert response.status_code == 302
    assert PhoneNumber.objects.get().consent == PhoneConsent.DISCLOSED


def test_the_webhook_url_to_paste_is_shown(tenant_a: TenantWorld) -> None:
    number = _number(tenant_a)
    client = tenant_a.client_for("editor")
    for page in ("/phone-numbers/", "/phone-numbers/new/", f"/phone-numbers/{number.public_id}/"):
        html = client.get(page).content.decode()
        assert f'value="{VOICE_URL}"' in html, page
        assert 'for="voice-webhook-url"' in html and 'id="voice-webhook-url"' in html
        assert "A call comes in" in html and "HTTP POST" in html
    # Auditors see it too, and before any number exists.
    PhoneNumber.objects.all().delete()
    assert VOICE_URL in tenant_a.client_for("auditor").get("/phone-numbers/").content.decode()


def test_without_a_carrier_account_the_page_says_what_to_do(tenant_a: TenantWorld) -> None:
    html = tenant_a.client_for("owner").get("/phone-numbers/").content.decode()
    assert "No phone numbers yet" in html
    assert 'href="/carrier-accounts/new/"' in html
    html = tenant_a.client_for("editor").get("/phone-numbers/new/").content.decode()
    assert "No carrier account yet" in html and "owner or admin" in html
    assert 'name="number"' not in html


def test_nav_shows_numbers_to_everyone_and_carrier_accounts_to_managers(
    tenant_a: TenantWorld,
) -> None:
    for role, manages in [("owner", True), ("admin", True), ("editor", False), ("auditor", False)]:
        html = tenant_a.client_for(role).get("/phone-numbers/").content.decode()
        assert '<a href="/phone-numbers/" aria-current="page">Phone numbers</a>' in html
        assert ('href="/carrier-accounts/"' in html) is manages, role


# --- carrier accounts ------------------------------------------------------------------------


def test_an_auth_token_is_encrypted_at_rest_and_never_rendered(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("owner")
    form_html = client.get("/carrier-accounts/new/").content.decode()
    assert 'type="password"' in form_html
    response = client.post("/carrier-accounts/new/", _account_data(), follow=True)
    assert response.redirect_chain == [("/carrier-accounts/", 302)]
    account = CarrierAccount.objects.get()
    assert (account.tenant, account.auth_token, account.token_hint) == (
        tenant_a.tenant,
        AUTH_TOKEN,
        "7788",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_token FROM telephony_carrieraccount")
        [(stored,)] = cursor.fetchall()
    assert "THE-REAL-TOKEN" not in stored

    number = _number(tenant_a, account=account)
    pages = [
        "/carrier-accounts/",
        f"/carrier-accounts/{account.public_id}/",
        f"/carrier-accounts/{account.public_id}/delete/",
        "/phone-numbers/",
        "/phone-numbers/new/",
        f"/phone-numbers/{number.public_id}/",
        f"/phone-numbers/{number.public_id}/delete/",
    ]
    for page in pages:
        html = client.get(page).content.decode()
        assert "THE-REAL-TOKEN" not in html, page
    assert "…7788" in client.get("/carrier-accounts/").content.decode()


def test_an_invalid_edit_does_not_echo_a_typed_token(tenant_a: TenantWorld) -> None:
    account = _account(tenant_a)
    response = tenant_a.client_for("admin").post(
        f"/carrier-accounts/{account.public_id}/",
        _account_data(name="", auth_token="twilio-A-NEW-TOKEN-1111"),
    )
    html = response.content.decode()
    assert "required" in _errors(response, "name")
    assert "A-NEW-TOKEN" not in html and "THE-REAL-TOKEN" not in html
    account.refresh_from_db()
    assert account.auth_token == AUTH_TOKEN


def test_editing_without_a_new_token_keeps_the_stored_one(tenant_a: TenantWorld) -> None:
    account = _account(tenant_a)
    edit = f"/carrier-accounts/{account.public_id}/"
    client = tenant_a.client_for("admin")
    assert "leave this empty to keep it" in client.get(edit).content.decode().lower()
    response = client.post(edit, _account_data(name="Renamed", auth_token=""))
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.name, account.auth_token) == ("Renamed", AUTH_TOKEN)

    client.post(edit, _account_data(name="Renamed", auth_token="twilio-rotated-4321"))
    account.refresh_from_db()
    assert (account.auth_token, account.token_hint) == ("twilio-rotated-4321", "4321")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"auth_token": ""}, "auth_token", "Paste"),
        ({"name": ""}, "name", "required"),
        ({"account_sid": ""}, "account_sid", "required"),
        ({"account_sid": AUTH_TOKEN}, "account_sid", "“AC” followed by 32"),
        # Only the carriers whose calls Koe answers are offered.
        ({"carrier": "plivo"}, "carrier", "valid choice"),
        # A Telnyx account's webhooks are checked with its Ed25519 public key.
        ({"carrier": "telnyx", "account_sid": ""}, "webhook_public_key", "32-byte Ed25519"),
        ({"carrier": "telnyx", "webhook_public_key": "c2hvcnQ="}, "webhook_public_key", "32-byte"),
    ],
)
def test_carrier_account_field_errors(
    tenant_a: TenantWorld, changes: dict[str, str], field: str, message: str
) -> None:
    response = tenant_a.client_for("owner").post("/carrier-accounts/new/", _account_data(**changes))
    assert message in _errors(response, field)
    assert not CarrierAccount.objects.exists()


def test_account_names_are_unique_per_tenant(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    _account(tenant_a, name="Main")
    _account(tenant_b, name="Shared name")
    client = tenant_a.client_for("owner")
    response = client.post("/carrier-accounts/new/", _account_data(name="Main"))
    assert "exists" in _errors(response, "name")
    response = client.post("/carrier-accounts/new/", _account_data(name="Shared name"))
    assert response.status_code == 302


def test_an_account_in_use_is_not_deleted_and_its_numbers_are_named(
    tenant_a: TenantWorld,
) -> None:
    account = _account(tenant_a)
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception")
    number = _number(tenant_a, account=account, agent=agent, label="Main line")
    client = tenant_a.client_for("owner")
    delete = f"/carrier-accounts/{account.public_id}/delete/"

    confirm = client.get(delete).content.decode()
    assert "cannot be deleted while phone numbers use it" in confirm
    assert f'href="/phone-numbers/{number.public_id}/"' in confirm and NUMBER in confirm
    assert 'type="submit" class="btn btn-danger"' not in confirm

    # Posted anyway (a stale page, another tab): a clear message, never a 500.
    response = client.post(delete)
    html = response.content.decode()
    assert response.status_code == 200
    assert "still used by phone numbers" in html and NUMBER in html
    assert CarrierAccount.objects.filter(pk=account.pk).exists()

    number.delete()
    response = client.post(delete, follow=True)
    assert "deleted" in response.content.decode()
    assert not CarrierAccount.objects.exists()


@pytest.mark.parametrize("role", ["editor", "auditor"])
def test_editors_and_auditors_cannot_reach_carrier_accounts(
    tenant_a: TenantWorld, role: str
) -> None:
    account = _account(tenant_a)
    client = tenant_a.client_for(role)
    edit = f"/carrier-accounts/{account.public_id}/"
    delete = f"/carrier-accounts/{account.public_id}/delete/"
    data = _account_data(name="Mine now", auth_token="twilio-attacker-0000")
    before = _rows(CarrierAccount)
    assert client.get("/carrier-accounts/").status_code == 403
    assert client.get("/carrier-accounts/new/").status_code == 403
    assert client.post("/carrier-accounts/new/", data).status_code == 403
    assert client.get(edit).status_code == 403
    assert client.post(edit, data).status_code == 403
    assert client.get(delete).status_code == 403
    assert client.post(delete).status_code == 403
    assert _rows(CarrierAccount) == before


# --- isolation -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "editor", "auditor"])
def test_another_tenants_numbers_and_accounts_are_not_found(
    tenant_a: TenantWorld, tenant_b: TenantWorld, role: str
) -> None:
    number = _number(tenant_a, agent=AgentFactory(tenant=tenant_a.tenant))
    account = number.carrier_account
    client = tenant_b.client_for(role)
    numbers, accounts = _rows(PhoneNumber), _rows(CarrierAccount)
    for page, data in [
        (f"/phone-numbers/{number.public_id}/", _number_data(account, label="Mine")),
        (f"/phone-numbers/{number.public_id}/delete/", {}),
        (f"/carrier-accounts/{account.public_id}/", _account_data(name="Mine")),
        (f"/carrier-accounts/{account.public_id}/delete/", {}),
    ]:
        assert client.get(page).status_code == 404, page
        assert client.post(page, data).status_code == 404, page
    assert (_rows(PhoneNumber), _rows(CarrierAccount)) == (numbers, accounts)
    assert NUMBER not in client.get("/phone-numbers/").content.decode()


def test_another_tenants_agent_and_account_cannot_be_chosen(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    a_agent = AgentFactory(tenant=tenant_a.tenant, name="Acme reception")
    a_account = _account(tenant_a, name="Acme Twilio")
    b_agent = AgentFactory(tenant=tenant_b.tenant)
    b_account = _account(tenant_b, name="B Twilio")
    client: Client = tenant_b.client_for("editor")

    form_html = client.get("/phone-numbers/new/").content.decode()
    assert a_agent.public_id not in form_html and "Acme reception" not in form_html
    assert a_account.public_id not in form_html and "Acme Twilio" not in form_html

    response = client.post("/phone-numbers/new/", _number_data(b_account, a_agent))
    assert "valid choice" in _errors(response, "agent")
    response = client.post("/phone-numbers/new/", _number_data(a_account, b_agent))
    assert "valid choice" in _errors(response, "carrier_account")
    assert not PhoneNumber.objects.exists()

    number = _number(tenant_b, "+14155550456", account=b_account, agent=b_agent)
    response = client.post(f"/phone-numbers/{number.public_id}/", _number_data(b_account, a_agent))
    assert "valid choice" in _errors(response, "agent")
    number.refresh_from_db()
    assert number.agent == b_agent


def test_the_pages_show_each_carriers_own_webhook(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("editor")
    listing = client.get("/phone-numbers/").content.decode()
    assert "/v1/telephony/twilio/voice" in listing and "/v1/telephony/telnyx/webhook" in listing
    account = CarrierAccount.objects.create(
        tenant=tenant_a.tenant,
        name="Telnyx",
        carrier="telnyx",
        auth_token="KEY0123",
        webhook_public_key="x" * 44,
    )
    number = PhoneNumber.objects.create(
        tenant=tenant_a.tenant, number="+14155550142", carrier_account=account
    )
    page = client.get(f"/phone-numbers/{number.public_id}/")
    assert "/v1/telephony/telnyx/webhook" in page.content.decode()
    assert "/v1/telephony/twilio/voice" not in page.content.decode()
