"""Secret API keys: shown once, stored as a digest, revoked for good; managers only."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from tenancy.models import ApiKey, hash_secret
from tests.conftest import TenantWorld

pytestmark = pytest.mark.django_db


def _keys() -> list[dict[str, Any]]:
    return list(ApiKey.objects.order_by("pk").values())


def test_a_secret_key_is_shown_once(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("admin")
    response = client.post("/keys/new/", {"name": "booking backend"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    html = response.content.decode()
    assert secret in html
    assert "it won't be shown again" in html
    key = ApiKey.objects.get(name="booking backend")
    assert (key.tenant, key.created_by) == (tenant_a.tenant, tenant_a.members["admin"].user)
    assert ApiKey.authenticate(secret) == key

    # Never again: not on the list, not in the session, only a digest in the database.
    listing = client.get("/keys/").content.decode()
    assert secret not in listing
    assert f"{key.prefix}…" in listing
    assert "booking backend" in listing
    assert secret not in repr(dict(client.session))
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenancy_apikey")
        rows = repr(cursor.fetchall())
    assert secret not in rows
    assert hash_secret(secret) in rows


def test_a_key_needs_a_name(tenant_a: TenantWorld) -> None:
    before = _keys()
    response = tenant_a.client_for("owner").post("/keys/new/", {"name": "  "})
    assert response.status_code == 200
    assert "required" in " ".join(response.context["form"].errors["name"])
    assert _keys() == before


def test_the_list_shows_usage_and_status(tenant_a: TenantWorld) -> None:
    assert tenant_a.api_key is not None
    ApiKey.authenticate(tenant_a.secret)  # records last use
    unused, _ = ApiKey.issue(tenant_a.tenant, "unused key")
    unused.revoke()
    html = tenant_a.client_for("owner").get("/keys/").content.decode()
    assert "Acme Dental backend" in html
    assert "never" in html  # the unused key
    assert "Revoked" in html
    assert "Active" in html
    assert html.count("Revoke…") == 1  # only the active key can be revoked


def test_no_keys_says_what_to_do(tenant_a: TenantWorld) -> None:
    ApiKey.objects.all().delete()
    html = tenant_a.client_for("owner").get("/keys/").content.decode()
    assert "No API keys yet — create your first key" in html


def test_a_revoked_key_stops_working(tenant_a: TenantWorld) -> None:
    assert tenant_a.api_key is not None
    client = tenant_a.client_for("owner")
    url = f"/keys/{tenant_a.api_key.public_id}/revoke/"
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "cannot be undone" in confirm.content.decode()
    assert ApiKey.authenticate(tenant_a.secret) == tenant_a.api_key  # not yet

    response = client.post(url, follow=True)
    assert "revoked" in response.content.decode()
    assert ApiKey.authenticate(tenant_a.secret) is None
    api = client.get("/v1/agents", headers={"Authorization": f"Bearer {tenant_a.secret}"})
    assert api.status_code == 401
    assert "already revoked" in client.post(url, follow=True).content.decode()


@pytest.mark.parametrize("role", ["editor", "auditor"])
def test_editors_and_auditors_are_forbidden_everywhere(tenant_a: TenantWorld, role: str) -> None:
    assert tenant_a.api_key is not None
    client = tenant_a.client_for(role)
    revoke = f"/keys/{tenant_a.api_key.public_id}/revoke/"
    before = _keys()
    assert client.get("/keys/").status_code == 403
    assert client.get("/keys/new/").status_code == 403
    assert client.post("/keys/new/", {"name": "sneaky"}).status_code == 403
    assert client.get(revoke).status_code == 403
    assert client.post(revoke).status_code == 403
    assert _keys() == before
    assert ApiKey.authenticate(tenant_a.secret) is not None


@pytest.mark.parametrize("role", ["owner", "admin", "editor", "auditor"])
def test_another_tenants_key_is_not_found(
    tenant_a: TenantWorld, tenant_b: TenantWorld, role: str
) -> None:
    assert tenant_a.api_key is not None
    client = tenant_b.client_for(role)
    revoke = f"/keys/{tenant_a.api_key.public_id}/revoke/"
    before = _keys()
    assert client.get(revoke).status_code == 404
    assert client.post(revoke).status_code == 404
    assert _keys() == before
    assert ApiKey.authenticate(tenant_a.secret) is not None
    assert "Acme Dental backend" not in client.get("/keys/").content.decode()
