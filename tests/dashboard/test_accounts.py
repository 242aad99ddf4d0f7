"""Sign-up, log-in, tenants: creating one, switching between them, their settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tenancy.models import Membership, Tenant
from tests.conftest import TenantWorld
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db
User = get_user_model()
GOOD_PASSWORD = "a-long-unusual-passphrase-42"


def test_signup_creates_the_account_and_asks_for_a_tenant() -> None:
    client = Client()
    response = client.post(
        "/signup/",
        {"email": "Ada@Example.com", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/tenants/new/"
    user = User.objects.get()
    assert user.email == "ada@example.com"
    assert client.get("/").url == "/tenants/new/"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"email": "not-an-email", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD},
            "email",
            "valid email",
        ),
        (
            {
                "email": "a@example.com",
                "password1": GOOD_PASSWORD,
                "password2": "other-password-43",
            },
            "password2",
            "differ",
        ),
        (
            {"email": "a@example.com", "password1": "123", "password2": "123"},
            "password1",
            "too short",
        ),
    ],
)
def test_signup_field_errors(data: dict[str, str], field: str, message: str) -> None:
    response = Client().post("/signup/", data)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not User.objects.exists()


def test_signup_refuses_a_taken_email(tenant_a: TenantWorld) -> None:
    taken = tenant_a.members["owner"].user.email.upper()
    response = Client().post(
        "/signup/", {"email": taken, "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD}
    )
    assert "log in instead" in " ".join(response.context["form"].errors["email"])


def test_the_operator_can_close_signup(settings: Any) -> None:
    settings.KOE_PUBLIC_SIGNUP = False
    client = Client()
    assert client.get("/signup/").status_code == 404
    response = client.post(
        "/signup/",
        {"email": "a@example.com", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD},
    )
    assert response.status_code == 404
    assert not User.objects.exists()
    assert b"/signup/" not in client.get("/login/").content


def test_login_by_email_and_logout(tenant_a: TenantWorld) -> None:
    client = Client()
    owner = tenant_a.members["owner"].user
    bad = client.post("/login/", {"username": owner.email, "password": "wrong"})
    assert bad.status_code == 200
    assert bad.context["form"].non_field_errors()
    response = client.post("/login/", {"username": owner.email, "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").url == "/agents/"
    assert client.post("/logout/").status_code == 302
    assert client.get("/agents/").status_code == 302  # back to the log-in page


def test_create_a_tenant_and_switch_between_tenants(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    client = tenant_a.client_for("editor")
    response = client.post("/tenants/new/", {"name": "Side Project", "time_zone": "Europe/Paris"})
    assert response.status_code == 302
    side = Tenant.objects.get(name="Side Project")
    editor = tenant_a.members["editor"].user
    assert Membership.objects.get(user=editor, tenant=side).role == "owner"
    # The new tenant is now the current one; the old one is still reachable.
    assert client.get("/agents/").context["current_tenant"] == side
    assert client.post(f"/tenants/{tenant_a.tenant.public_id}/switch/").status_code == 302
    assert client.get("/agents/").context["current_tenant"] == tenant_a.tenant
    # Someone else's tenant cannot be switched to.
    assert client.post(f"/tenants/{tenant_b.tenant.public_id}/switch/").status_code == 404
    assert client.get("/agents/").context["current_tenant"] == tenant_a.tenant


def test_settings_validate_the_time_zone(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("admin")
    response = client.post(
        "/settings/", {"name": "Acme", "time_zone": "Mars/Olympus", "max_concurrent_calls": 5}
    )
    assert response.status_code == 200
    assert "not an IANA time zone" in " ".join(response.context["form"].errors["time_zone"])
    response = client.post(
        "/settings/", {"name": "Acme", "time_zone": "Asia/Tokyo", "max_concurrent_calls": 5}
    )
    assert response.status_code == 302
    tenant_a.tenant.refresh_from_db()
    assert (
        tenant_a.tenant.name,
        tenant_a.tenant.time_zone,
        tenant_a.tenant.max_concurrent_calls,
    ) == ("Acme", "Asia/Tokyo", 5)
