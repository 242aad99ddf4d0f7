"""Accounts: sign-up (and closing it), log-in by e-mail, log-out, the home redirect."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import TenantWorld
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
GOOD_PASSWORD = "a-long-unusual-passphrase-42"


def _signup(client: Client, email: str, password1: str, password2: str | None = None) -> Any:
    return client.post(
        "/signup/",
        {"email": email, "password1": password1, "password2": password2 or password1},
    )


def test_signup_creates_the_account_logs_in_and_asks_for_a_tenant() -> None:
    client = Client()
    page = client.get("/signup/")
    assert page.status_code == 200
    assert b'name="password2"' in page.content
    response = _signup(client, "Ada@Example.com", GOOD_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/tenants/new/"
    user = User.objects.get()
    assert (user.username, user.email) == ("ada@example.com", "ada@example.com")
    assert user.check_password(GOOD_PASSWORD)
    # Logged in, and without a tenant yet: home leads to creating one.
    assert client.get("/").url == "/tenants/new/"
    assert b"Name your organisation" in client.get("/tenants/new/").content


@pytest.mark.parametrize(
    ("email", "password1", "password2", "field", "message"),
    [
        ("not-an-email", GOOD_PASSWORD, GOOD_PASSWORD, "email", "valid email"),
        ("", GOOD_PASSWORD, GOOD_PASSWORD, "email", "required"),
        ("a@example.com", GOOD_PASSWORD, "other-password-43", "password2", "differ"),
        ("a@example.com", "x7#", "x7#", "password1", "too short"),
        ("a@example.com", "password123", "password123", "password1", "too common"),
        ("a@example.com", "83749261538", "83749261538", "password1", "entirely numeric"),
        ("margaret.hamilton@example.com", "margaret.hamilton", None, "password1", "similar"),
    ],
)
def test_signup_field_errors(
    email: str, password1: str, password2: str | None, field: str, message: str
) -> None:
    response = _signup(Client(), email, password1, password2)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert b'aria-invalid="true"' in response.content
    assert not User.objects.exists()


def test_signup_refuses_a_taken_email_in_any_case(tenant_a: TenantWorld) -> None:
    taken = tenant_a.members["owner"].user.email.upper()
    response = _signup(Client(), taken, GOOD_PASSWORD)
    assert response.status_code == 200
    assert "log in instead" in " ".join(response.context["form"].errors["email"])
    assert User.objects.filter(username__iexact=taken).count() == 1


def test_the_operator_can_close_signup(settings: Any) -> None:
    settings.KOE_PUBLIC_SIGNUP = False
    client = Client()
    assert client.get("/signup/").status_code == 404
    assert _signup(client, "a@example.com", GOOD_PASSWORD).status_code == 404
    assert not User.objects.exists()
    login_page = client.get("/login/").content.decode()
    assert "/signup/" not in login_page
    assert "by invitation" in login_page


def test_the_login_page_offers_signup_when_open() -> None:
    assert b'href="/signup/"' in Client().get("/login/").content


def test_a_logged_in_user_is_not_offered_signup(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for("editor").get("/signup/")
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_login_by_email_in_any_case_then_logout(tenant_a: TenantWorld) -> None:
    client = Client()
    page = client.get("/login/")
    assert "E-mail" in page.content.decode()
    owner = tenant_a.members["owner"].user
    response = client.post("/login/", {"username": owner.email.upper(), "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").url == "/agents/"
    assert client.get("/agents/").status_code == 200

    assert client.post("/logout/").status_code == 302
    response = client.get("/agents/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_a_wrong_password_is_a_form_error(tenant_a: TenantWorld) -> None:
    client = Client()
    owner = tenant_a.members["owner"].user
    response = client.post("/login/", {"username": owner.email, "password": "wrong"})
    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_returns_to_the_page_asked_for(tenant_a: TenantWorld) -> None:
    client = Client()
    owner = tenant_a.members["owner"].user
    response = client.post(
        "/login/?next=/tools/", {"username": owner.email, "password": PASSWORD, "next": "/tools/"}
    )
    assert response["Location"] == "/tools/"


def test_an_account_with_a_capitalised_username_still_logs_in() -> None:
    # Accounts made by `createsuperuser` or the admin keep the case they were typed in.
    UserFactory(username="Grace@Example.com")
    client = Client()
    response = client.post("/login/", {"username": "grace@example.com", "password": PASSWORD})
    assert response.status_code == 302


def test_home_sends_each_visitor_to_the_right_place(tenant_a: TenantWorld) -> None:
    assert Client().get("/")["Location"] == "/login/"
    lonely = Client()
    lonely.force_login(UserFactory())
    assert lonely.get("/")["Location"] == "/tenants/new/"
    assert lonely.get("/agents/")["Location"] == "/tenants/new/"
    assert tenant_a.client_for("auditor").get("/")["Location"] == "/agents/"
