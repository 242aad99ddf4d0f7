"""Password reset by an e-mailed link that works once, and changing the password."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from tests.conftest import TenantWorld
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-fresh-unusual-passphrase-77"
SITE = "https://koe.example"


@pytest.fixture(autouse=True)
def _site_url(settings: Any) -> None:
    settings.KOE_SITE_URL = SITE


def _ask_for_link(client: Client, email: str) -> Any:
    return client.post("/password-reset/", {"email": email})


def _mailed_link() -> str:
    """The path of the reset link in the last e-mail (it points at KOE_SITE_URL)."""
    match = re.search(re.escape(SITE) + r"(/password-reset/[^/\s]+/[^/\s]+/)", mail.outbox[-1].body)
    assert match is not None, mail.outbox[-1].body
    return match.group(1)


def _set_password(client: Client, link: str, password: str) -> Any:
    form_page = client.get(link)  # Django moves the token from the URL into the session
    if form_page.status_code != 302:
        return form_page
    return client.post(
        form_page["Location"], {"new_password1": password, "new_password2": password}
    )


def test_the_login_page_offers_the_reset() -> None:
    assert b'href="/password-reset/"' in Client().get("/login/").content


def test_a_mailed_link_sets_a_new_password_once(tenant_a: TenantWorld) -> None:
    owner = tenant_a.members["owner"].user
    response = _ask_for_link(Client(), owner.email.upper())
    assert response.status_code == 302
    assert response["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [owner.email]
    assert mail.outbox[0].subject == "Reset your Koe password"
    link = _mailed_link()

    response = _set_password(Client(), link, NEW_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/password-reset/done/"
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    client = Client()
    assert (
        client.post("/login/", {"username": owner.email, "password": NEW_PASSWORD}).status_code
        == 302
    )

    # The same link a second time: refused, and the password stays.
    second = _set_password(Client(), link, "yet-another-passphrase-88")
    assert second.status_code == 200
    assert "This link no longer works" in second.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)


def test_the_answer_is_the_same_for_an_address_without_account(tenant_a: TenantWorld) -> None:
    known = _ask_for_link(Client(), tenant_a.members["owner"].user.email)
    unknown = _ask_for_link(Client(), "nobody@example.com")
    assert (unknown.status_code, unknown["Location"]) == (known.status_code, known["Location"])
    assert len(mail.outbox) == 1  # only the account's address got mail
    done = Client().get(unknown["Location"]).content.decode()
    assert "If the address belongs to an account" in done


def test_a_link_expires(tenant_a: TenantWorld) -> None:
    owner = tenant_a.members["owner"].user
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        _ask_for_link(Client(), owner.email)
        traveller.shift(timedelta(minutes=61))
        response = _set_password(Client(), _mailed_link(), NEW_PASSWORD)
    assert response.status_code == 200
    assert "This link no longer works" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_a_new_password_lifts_the_account_lockout(tenant_a: TenantWorld) -> None:
    owner = tenant_a.members["owner"].user
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(5):
        attacker.post("/login/", {"username": owner.email, "password": "wrong-password"})
    client = Client(REMOTE_ADDR="203.0.113.9")
    locked = client.post("/login/", {"username": owner.email, "password": PASSWORD})
    assert locked.status_code == 429

    _ask_for_link(client, owner.email)
    _set_password(client, _mailed_link(), NEW_PASSWORD)

    response = client.post("/login/", {"username": owner.email, "password": NEW_PASSWORD})
    assert response.status_code == 302


# --- changing the password -----------------------------------------------------------------


def _change(client: Client, old: str, new: str) -> Any:
    return client.post(
        "/account/password/",
        {"old_password": old, "new_password1": new, "new_password2": new},
    )


def test_a_member_changes_the_password_and_other_sessions_end(tenant_a: TenantWorld) -> None:
    other_session = tenant_a.client_for("auditor")
    client = tenant_a.client_for("auditor")
    assert client.get("/account/password/").status_code == 200

    response = _change(client, PASSWORD, NEW_PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/account/"
    user = tenant_a.members["auditor"].user
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert client.get("/agents/").status_code == 200
    assert other_session.get("/agents/")["Location"].startswith("/login/")


def test_changing_the_password_needs_the_old_one(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("editor")
    response = _change(client, "not-my-password", NEW_PASSWORD)
    assert response.status_code == 200
    assert "old_password" in response.context["form"].errors
    user = tenant_a.members["editor"].user
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_changing_the_password_needs_a_login() -> None:
    response = Client().get("/account/password/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
