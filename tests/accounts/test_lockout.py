"""Log-in lockout (django-axes): per account and per address, a clear page, a cool-off."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from tenancy.models import Invitation
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db
LIMIT = 5  # KOE_LOGIN_FAILURE_LIMIT's default
ATTACKER = "198.51.100.7"
VISITOR = "203.0.113.9"


def _log_in(client: Client, email: str, password: str, **headers: Any) -> Any:
    return client.post("/login/", {"username": email, "password": password}, **headers)


def _fail(client: Client, email: str, times: int = LIMIT, **headers: Any) -> list[int]:
    return [_log_in(client, email, "wrong-password", **headers).status_code for _ in range(times)]


def test_thirty_wrong_passwords_are_stopped_after_the_limit(tenant_a: TenantWorld) -> None:
    email = tenant_a.members["owner"].user.email
    statuses = _fail(Client(REMOTE_ADDR=ATTACKER), email, times=30)
    assert statuses == [200] * (LIMIT - 1) + [429] * (30 - LIMIT + 1)


def test_the_lockout_page_says_what_happened_and_what_to_do(tenant_a: TenantWorld) -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    email = tenant_a.members["owner"].user.email
    _fail(client, email, times=LIMIT - 1)
    response = _log_in(client, email, "wrong-password")
    assert response.status_code == 429
    assert response["Retry-After"] == str(15 * 60)
    page = response.content.decode()
    assert "Too many failed log-ins" in page
    assert "paused for 15 minutes" in page
    assert 'href="/password-reset/"' in page


def test_a_locked_account_refuses_even_the_right_password_from_anywhere(
    tenant_a: TenantWorld,
) -> None:
    owner = tenant_a.members["owner"].user
    _fail(Client(REMOTE_ADDR=ATTACKER), owner.email)

    elsewhere = Client(REMOTE_ADDR=VISITOR)
    response = _log_in(elsewhere, owner.email.upper(), PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in elsewhere.session
    # Another account from that other address is not concerned.
    editor = tenant_a.members["editor"].user
    assert _log_in(elsewhere, editor.email, PASSWORD).status_code == 302


def test_a_locked_address_is_refused_for_every_account(tenant_a: TenantWorld) -> None:
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for number in range(LIMIT):  # one guess each at many accounts
        _fail(attacker, f"guess{number}@example.com", times=1)

    editor = tenant_a.members["editor"].user
    assert _log_in(attacker, editor.email, PASSWORD).status_code == 429
    assert _log_in(Client(REMOTE_ADDR=VISITOR), editor.email, PASSWORD).status_code == 302


def test_behind_trusted_proxies_the_forwarded_client_is_the_address(
    tenant_a: TenantWorld, settings: Any
) -> None:
    settings.KOE_TRUSTED_PROXIES = 1
    proxy = "10.0.0.2"
    attacker = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=ATTACKER)
    for number in range(LIMIT):
        _fail(attacker, f"guess{number}@example.com", times=1)
    editor = tenant_a.members["editor"].user

    # A forged left-hand entry does not buy the attacker a fresh address ...
    forged = {"HTTP_X_FORWARDED_FOR": f"192.0.2.1, {ATTACKER}"}
    assert _log_in(Client(REMOTE_ADDR=proxy), editor.email, PASSWORD, **forged).status_code == 429
    # ... and everyone else behind the same proxy still logs in.
    visitor = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=VISITOR)
    assert _log_in(visitor, editor.email, PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(tenant_a: TenantWorld) -> None:
    owner = tenant_a.members["owner"].user
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        _fail(Client(REMOTE_ADDR=ATTACKER), owner.email)
        traveller.shift(timedelta(minutes=10))
        # A try while locked out is refused and does not push the end further away.
        assert _log_in(Client(REMOTE_ADDR=VISITOR), owner.email, PASSWORD).status_code == 429
        traveller.shift(timedelta(minutes=4, seconds=59))
        assert _log_in(Client(REMOTE_ADDR=VISITOR), owner.email, PASSWORD).status_code == 429
        traveller.shift(timedelta(seconds=2))
        client = Client(REMOTE_ADDR=VISITOR)
        assert _log_in(client, owner.email, PASSWORD).status_code == 302
        assert client.get("/agents/").status_code == 200


def test_the_failure_limit_is_a_setting(tenant_a: TenantWorld, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    email = tenant_a.members["owner"].user.email
    assert _fail(Client(REMOTE_ADDR=ATTACKER), email, times=3) == [200, 429, 429]


def test_the_invitation_log_in_is_counted_too(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    invited = tenant_a.members["editor"].user
    _, token = Invitation.issue(tenant=tenant_b.tenant, email=invited.email, role=Role.EDITOR)
    client = Client(REMOTE_ADDR=ATTACKER)
    statuses = [
        client.post(f"/invite/{token}/", {"password": "wrong-password"}).status_code
        for _ in range(LIMIT)
    ]
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert client.post(f"/invite/{token}/", {"password": PASSWORD}).status_code == 429
    assert not tenant_b.tenant.memberships.filter(user=invited).exists()


def test_the_admin_log_in_is_counted_too(tenant_a: TenantWorld) -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    email = tenant_a.members["owner"].user.email
    statuses = [
        client.post("/admin/login/", {"username": email, "password": "wrong"}).status_code
        for _ in range(LIMIT)
    ]
    assert statuses == [200] * (LIMIT - 1) + [429]
