"""Provider credentials: encrypted at rest, never rendered back, managers only."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from tenancy.models import ProviderCredential
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CredentialFactory

pytestmark = pytest.mark.django_db
PROVIDER_SECRET = "sk-proj-THE-REAL-ONE-9876"


def _credentials() -> list[dict[str, Any]]:
    return list(ProviderCredential.objects.order_by("pk").values())


def test_a_provider_key_is_encrypted_at_rest_and_never_rendered(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("owner")
    assert b'type="password"' in client.get("/credentials/new/").content
    response = client.post(
        "/credentials/new/",
        {"name": "OpenAI prod", "provider": "openai", "api_key": PROVIDER_SECRET},
        follow=True,
    )
    assert response.redirect_chain == [("/credentials/", 302)]
    assert "OpenAI prod" in response.content.decode()
    credential = ProviderCredential.objects.get()
    assert (credential.tenant, credential.api_key, credential.key_hint) == (
        tenant_a.tenant,
        PROVIDER_SECRET,
        "9876",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM tenancy_providercredential")
        [(stored,)] = cursor.fetchall()
    assert PROVIDER_SECRET not in stored
    assert "THE-REAL-ONE" not in stored
    for page in ("/credentials/", f"/credentials/{credential.public_id}/"):
        html = client.get(page).content.decode()
        assert PROVIDER_SECRET not in html
        assert "…9876" in html  # the hint tells keys apart


def test_an_invalid_edit_does_not_echo_a_typed_key(tenant_a: TenantWorld) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant, api_key=PROVIDER_SECRET)
    response = tenant_a.client_for("admin").post(
        f"/credentials/{credential.public_id}/",
        {"name": "", "provider": "openai", "api_key": "sk-proj-A-NEW-ONE-1111"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "sk-proj-A-NEW-ONE-1111" not in html
    assert PROVIDER_SECRET not in html
    credential.refresh_from_db()
    assert credential.api_key == PROVIDER_SECRET


def test_editing_without_a_new_key_keeps_the_stored_one(tenant_a: TenantWorld) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant, api_key=PROVIDER_SECRET)
    client = tenant_a.client_for("admin")
    assert (
        "leave this empty to keep it"
        in client.get(f"/credentials/{credential.public_id}/").content.decode().lower()
    )
    response = client.post(
        f"/credentials/{credential.public_id}/",
        {"name": "Renamed", "provider": "openai", "api_key": ""},
    )
    assert response.status_code == 302
    credential.refresh_from_db()
    assert (credential.name, credential.api_key) == ("Renamed", PROVIDER_SECRET)

    client.post(
        f"/credentials/{credential.public_id}/",
        {"name": "Renamed", "provider": "openai", "api_key": "sk-proj-rotated-4321"},
    )
    credential.refresh_from_db()
    assert (credential.api_key, credential.key_hint) == ("sk-proj-rotated-4321", "4321")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "OpenAI", "provider": "openai", "api_key": ""}, "api_key", "Paste"),
        ({"name": "", "provider": "openai", "api_key": "k"}, "name", "required"),
        ({"name": "X", "provider": "anthropic", "api_key": "k"}, "provider", "valid choice"),
        ({"name": "Azure", "provider": "azure", "api_key": "k"}, "azure_endpoint", "endpoint"),
        (
            {
                "name": "Azure",
                "provider": "azure",
                "api_key": "k",
                "azure_endpoint": "http://res.openai.azure.com",
            },
            "azure_endpoint",
            "https://",
        ),
        (
            {"name": "Azure", "provider": "azure", "api_key": "k", "azure_endpoint": "not a url"},
            "azure_endpoint",
            "valid URL",
        ),
        *[
            (
                {"name": "Azure", "provider": "azure", "api_key": "k", "azure_endpoint": url},
                "azure_endpoint",
                why,
            )
            for url, why in [
                ("https://127.0.0.1", "loopback"),
                ("https://169.254.169.254/", "metadata"),
                ("https://10.0.0.1:8443", "private"),
                ("https://localhost", "loopback"),
                ("https://metadata.google.internal", "metadata"),
                ("https://[::ffff:127.0.0.1]", "loopback"),
            ]
        ],
    ],
)
def test_field_errors(
    tenant_a: TenantWorld, data: dict[str, str], field: str, message: str
) -> None:
    response = tenant_a.client_for("owner").post("/credentials/new/", data)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not ProviderCredential.objects.exists()


def test_azure_with_an_https_endpoint_is_saved(tenant_a: TenantWorld) -> None:
    tenant_a.client_for("owner").post(
        "/credentials/new/",
        {
            "name": "Azure",
            "provider": "azure",
            "api_key": "azure-key-5555",
            "azure_endpoint": "res.openai.azure.com",  # the scheme is assumed to be https
        },
    )
    credential = ProviderCredential.objects.get()
    assert (credential.provider, credential.azure_endpoint) == (
        "azure",
        "https://res.openai.azure.com",
    )


def test_names_are_unique_per_tenant(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    CredentialFactory(tenant=tenant_a.tenant, name="Prod")
    CredentialFactory(tenant=tenant_b.tenant, name="Shared name")
    client = tenant_a.client_for("owner")
    response = client.post(
        "/credentials/new/", {"name": "Prod", "provider": "openai", "api_key": "k"}
    )
    assert "exists" in " ".join(response.context["form"].errors["name"])
    response = client.post(
        "/credentials/new/", {"name": "Shared name", "provider": "openai", "api_key": "k"}
    )
    assert response.status_code == 302


def test_no_credentials_says_what_to_do(tenant_a: TenantWorld) -> None:
    html = tenant_a.client_for("owner").get("/credentials/").content.decode()
    assert "No provider keys yet" in html
    assert 'href="/credentials/new/"' in html


def test_delete_asks_first_and_names_the_agents_using_it(tenant_a: TenantWorld) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant)
    AgentFactory(
        tenant=tenant_a.tenant, name="Front desk", provider="openai", credential=credential
    )
    client = tenant_a.client_for("owner")
    confirm = client.get(f"/credentials/{credential.public_id}/delete/")
    assert confirm.status_code == 200
    assert "Front desk" in confirm.content.decode()
    assert ProviderCredential.objects.exists()
    response = client.post(f"/credentials/{credential.public_id}/delete/", follow=True)
    assert "deleted" in response.content.decode()
    assert not ProviderCredential.objects.exists()


@pytest.mark.parametrize("role", ["editor", "auditor"])
def test_editors_and_auditors_are_forbidden_everywhere(tenant_a: TenantWorld, role: str) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant, api_key=PROVIDER_SECRET)
    client = tenant_a.client_for(role)
    edit = f"/credentials/{credential.public_id}/"
    delete = f"/credentials/{credential.public_id}/delete/"
    data = {"name": "Mine now", "provider": "openai", "api_key": "sk-attacker-0000"}
    before = _credentials()
    assert client.get("/credentials/").status_code == 403
    assert client.get("/credentials/new/").status_code == 403
    assert client.post("/credentials/new/", data).status_code == 403
    assert client.get(edit).status_code == 403
    assert client.post(edit, data).status_code == 403
    assert client.get(delete).status_code == 403
    assert client.post(delete).status_code == 403
    assert _credentials() == before


@pytest.mark.parametrize("role", ["owner", "admin", "editor", "auditor"])
def test_another_tenants_credential_is_not_found(
    tenant_a: TenantWorld, tenant_b: TenantWorld, role: str
) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant, api_key=PROVIDER_SECRET)
    client = tenant_b.client_for(role)
    edit = f"/credentials/{credential.public_id}/"
    delete = f"/credentials/{credential.public_id}/delete/"
    before = _credentials()
    assert client.get(edit).status_code == 404
    assert client.post(edit, {"name": "x", "provider": "openai", "api_key": "k"}).status_code == 404
    assert client.get(delete).status_code == 404
    assert client.post(delete).status_code == 404
    assert _credentials() == before
