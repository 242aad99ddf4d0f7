"""Tenants: creating one, switching between them, and the current tenant's settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tenancy.models import Membership, Tenant
from tests.conftest import TenantWorld
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _tenant_row(tenant: Tenant) -> tuple[str, str, int]:
    tenant.refresh_from_db()
    return (tenant.name, tenant.time_zone, tenant.max_concurrent_calls)


def test_a_new_user_creates_a_tenant_and_becomes_its_owner() -> None:
    user = UserFactory()
    client = Client()
    client.force_login(user)
    page = client.get("/tenants/new/")
    assert page.status_code == 200
    assert 'list="id_time_zone-choices"' in page.content.decode()
    assert '<option value="Europe/Paris">' in page.content.decode()

    response = client.post(
        "/tenants/new/", {"name": "Café Nord", "time_zone": "Europe/Paris"}, follow=True
    )
    tenant = Tenant.objects.get()
    assert (tenant.name, tenant.time_zone) == ("Café Nord", "Europe/Paris")
    assert Membership.objects.get(user=user, tenant=tenant).role == "owner"
    assert response.redirect_chain == [("/agents/", 302)]
    assert response.context["current_tenant"] == tenant
    assert "Café Nord is ready" in response.content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "time_zone": "UTC"}, "name", "required"),
        ({"name": "Café Nord", "time_zone": "Mars/Olympus"}, "time_zone", "not an IANA"),
    ],
)
def test_tenant_create_field_errors(data: dict[str, str], field: str, message: str) -> None:
    client = Client()
    client.force_login(UserFactory())
    response = client.post("/tenants/new/", data)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not Tenant.objects.exists()


def test_tenant_create_needs_a_login() -> None:
    response = Client().post("/tenants/new/", {"name": "Café Nord", "time_zone": "UTC"})
    assert response.status_code == 302
    assert response.url.startswith("/login/")
    assert not Tenant.objects.exists()


def test_any_member_may_create_more_tenants_and_switch_between_them(
    tenant_a: TenantWorld,
) -> None:
    client = tenant_a.client_for("auditor")
    auditor = tenant_a.members["auditor"].user
    assert b"Create another tenant" in client.get("/tenants/new/").content
    client.post("/tenants/new/", {"name": "Side Project", "time_zone": "UTC"})
    side = Tenant.objects.get(name="Side Project")
    assert Membership.objects.get(user=auditor, tenant=side).role == "owner"
    # The new tenant is the current one, and the old one is offered in the switcher.
    page = client.get("/agents/")
    assert page.context["current_tenant"] == side
    assert f"/tenants/{tenant_a.tenant.public_id}/switch/" in page.content.decode()

    response = client.post(f"/tenants/{tenant_a.tenant.public_id}/switch/")
    assert response.status_code == 302
    assert response["Location"] == "/agents/"
    page = client.get("/agents/")
    assert page.context["current_tenant"] == tenant_a.tenant
    assert page.context["membership"].role == "auditor"


def test_switching_to_a_tenant_you_are_not_in_is_not_found(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    client = tenant_a.client_for("owner")
    assert client.post(f"/tenants/{tenant_b.tenant.public_id}/switch/").status_code == 404
    assert client.post("/tenants/ten_does-not-exist/switch/").status_code == 404
    assert client.get("/agents/").context["current_tenant"] == tenant_a.tenant


def test_switching_is_post_only(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("owner")
    assert client.get(f"/tenants/{tenant_a.tenant.public_id}/switch/").status_code == 405


def test_settings_are_edited_with_field_errors(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("admin")
    page = client.get("/settings/")
    assert page.status_code == 200
    assert 'value="Acme Dental"' in page.content.decode()

    response = client.post(
        "/settings/", {"name": "", "time_zone": "Mars/Olympus", "max_concurrent_calls": 0}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "not an IANA time zone" in " ".join(errors["time_zone"])
    assert "required" in " ".join(errors["name"])
    assert "greater than or equal to 1" in " ".join(errors["max_concurrent_calls"])
    # The page's header still shows the stored name, and nothing was saved.
    assert "Settings of Acme Dental" in response.content.decode()
    assert _tenant_row(tenant_a.tenant) == ("Acme Dental", "UTC", 10)

    response = client.post(
        "/settings/", {"name": "Acme", "time_zone": "Asia/Tokyo", "max_concurrent_calls": 5}
    )
    assert response.status_code == 302
    assert _tenant_row(tenant_a.tenant) == ("Acme", "Asia/Tokyo", 5)


@pytest.mark.parametrize("role", ["editor", "auditor"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_settings_are_forbidden_to_editors_and_auditors(
    tenant_a: TenantWorld, role: str, method: str
) -> None:
    client = tenant_a.client_for(role)
    data: dict[str, Any] = {"name": "Hijacked", "time_zone": "UTC", "max_concurrent_calls": 99}
    response = client.get("/settings/") if method == "GET" else client.post("/settings/", data)
    assert response.status_code == 403
    assert _tenant_row(tenant_a.tenant) == ("Acme Dental", "UTC", 10)


def test_settings_change_only_the_current_tenant(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    tenant_a.client_for("owner").post(
        "/settings/", {"name": "Acme", "time_zone": "UTC", "max_concurrent_calls": 3}
    )
    assert _tenant_row(tenant_b.tenant) == ("Bistro Verde", "UTC", 10)
