"""Secret API keys (shown once, stored as a digest) and provider keys (encrypted)."""

from __future__ import annotations

import pytest
from django.db import connection

from tenancy.models import ApiKey, ProviderCredential
from tests.conftest import TenantWorld
from tests.factories import CredentialFactory

pytestmark = pytest.mark.django_db
PROVIDER_SECRET = "sk-proj-THE-REAL-ONE-9876"


def test_a_secret_key_is_shown_once(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("admin")
    response = client.post("/keys/new/", {"name": "booking backend"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    assert secret.encode() in response.content
    key = ApiKey.objects.get(name="booking backend")
    assert ApiKey.authenticate(secret) == key
    # Never again: not on the list, not in the database.
    listing = client.get("/keys/")
    assert secret.encode() not in listing.content
    assert key.prefix.encode() in listing.content
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenancy_apikey")
        assert secret not in repr(cursor.fetchall())


def test_a_revoked_key_stops_working(tenant_a: TenantWorld) -> None:
    assert tenant_a.api_key is not None
    response = tenant_a.client_for("owner").post(f"/keys/{tenant_a.api_key.public_id}/revoke/")
    assert response.status_code == 302
    assert ApiKey.authenticate(tenant_a.secret) is None
    api = tenant_a.client_for("owner").get(
        "/v1/agents", headers={"Authorization": f"Bearer {tenant_a.secret}"}
    )
    assert api.status_code == 401


def test_provider_keys_are_encrypted_and_never_rendered(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("owner")
    response = client.post(
        "/credentials/new/",
        {"name": "OpenAI prod", "provider": "openai", "api_key": PROVIDER_SECRET},
    )
    assert response.status_code == 302
    credential = ProviderCredential.objects.get()
    assert credential.api_key == PROVIDER_SECRET
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM tenancy_providercredential")
        assert PROVIDER_SECRET not in cursor.fetchone()[0]
    for page in ("/credentials/", f"/credentials/{credential.public_id}/"):
        html = client.get(page).content.decode()
        assert PROVIDER_SECRET not in html
        assert "9876" in html  # the hint tells keys apart


def test_editing_without_a_new_key_keeps_the_stored_one(tenant_a: TenantWorld) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant, api_key=PROVIDER_SECRET)
    client = tenant_a.client_for("admin")
    response = client.post(
        f"/credentials/{credential.public_id}/",
        {"name": "Renamed", "provider": "openai", "api_key": ""},
    )
    assert response.status_code == 302
    credential.refresh_from_db()
    assert (credential.name, credential.api_key) == ("Renamed", PROVIDER_SECRET)


def test_azure_needs_an_https_endpoint(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("owner")
    response = client.post(
        "/credentials/new/", {"name": "Azure", "provider": "azure", "api_key": "k"}
    )
    assert "endpoint" in " ".join(response.context["form"].errors["azure_endpoint"])
    response = client.post(
        "/credentials/new/",
        {
            "name": "Azure",
            "provider": "azure",
            "api_key": "k",
            "azure_endpoint": "http://res.openai.azure.com",
        },
    )
    assert "https" in " ".join(response.context["form"].errors["azure_endpoint"])
    assert not ProviderCredential.objects.exists()


def test_delete_asks_first(tenant_a: TenantWorld) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant)
    client = tenant_a.client_for("owner")
    assert client.get(f"/credentials/{credential.public_id}/delete/").status_code == 200
    assert ProviderCredential.objects.exists()
    assert client.post(f"/credentials/{credential.public_id}/delete/").status_code == 302
    assert not ProviderCredential.objects.exists()
