"""Two-factor log-in: set up with an authenticator app, a code after the password, backup
codes, and tenants whose owner requires it of every member."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenancy import two_factor
from tenancy.models import Invitation
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock() -> Iterator[Any]:
    """A stopped clock: each TOTP code is for one 30-second step, and is used once."""
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def _code(device: TOTPDevice) -> str:
    device.refresh_from_db()
    return str(TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token())


def _next_step(clock: Any) -> None:
    clock.shift(timedelta(seconds=30))


def _turn_on(user: Any, clock: Any) -> tuple[TOTPDevice, list[str]]:
    device = two_factor.app_to_confirm(user)
    codes = two_factor.confirm_app(device, _code(device))
    _next_step(clock)
    return device, codes


def _log_in_with_password(user: Any) -> Client:
    client = Client()
    response = client.post("/login/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302
    return client


# --- setting it up -------------------------------------------------------------------------


def test_setup_shows_the_secret_and_a_code_turns_it_on(tenant_a: TenantWorld, clock: Any) -> None:
    client = tenant_a.client_for("auditor")
    user = tenant_a.members["auditor"].user
    assert "Off." in client.get("/account/").content.decode()

    page = client.get("/account/two-factor/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "otpauth://totp/Koe%3A" in text
    assert "<svg" in text
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed
    # The page shows the same secret until it is confirmed.
    assert device.config_url in client.get("/account/two-factor/").content.decode().replace(
        "&amp;", "&"
    )

    wrong = client.post("/account/two-factor/", {"code": "000000"})
    assert wrong.status_code == 200
    assert "does not match" in wrong.content.decode()
    assert not two_factor.is_enabled(user)

    _next_step(clock)  # django-otp makes a wrong code wait a second
    done = client.post("/account/two-factor/", {"code": _code(device)})
    assert done.status_code == 200
    codes = re.findall(r"<li>([a-z2-7]{8})</li>", done.content.decode())
    assert len(codes) == 10
    assert two_factor.is_enabled(user)
    # The session that confirmed the app goes on, and the account page says it is on.
    assert client.get("/agents/").status_code == 200
    assert "On." in client.get("/account/").content.decode()


def test_login_asks_for_the_code_after_the_password(tenant_a: TenantWorld, clock: Any) -> None:
    user = tenant_a.members["editor"].user
    device, _ = _turn_on(user, clock)
    client = _log_in_with_password(user)

    response = client.get("/agents/")
    assert response.status_code == 302
    assert response["Location"] == "/login/code/?next=%2Fagents%2F"
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in page.content.decode()

    wrong = client.post("/login/code/", {"code": "123456", "next": "/agents/"})
    assert wrong.status_code == 200
    assert "wrong or was already used" in wrong.content.decode()
    assert client.get("/agents/").status_code == 302

    _next_step(clock)
    right = client.post("/login/code/", {"code": _code(device), "next": "/agents/"})
    assert right.status_code == 302
    assert right["Location"] == "/agents/"
    assert client.get("/agents/").status_code == 200


@pytest.mark.parametrize(
    "path", ["/", "/settings/", "/account/", "/account/password/", "/account/two-factor/off/"]
)
def test_a_session_owing_its_code_opens_nothing_else(
    path: str, tenant_a: TenantWorld, clock: Any
) -> None:
    user = tenant_a.members["owner"].user
    _turn_on(user, clock)
    client = _log_in_with_password(user)
    response = (
        client.post(path, {"password": PASSWORD}) if path.endswith("off/") else client.get(path)
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/login/code/")
    assert two_factor.is_enabled(user)


def test_wrong_codes_make_the_next_try_wait(tenant_a: TenantWorld, clock: Any) -> None:
    user = tenant_a.members["editor"].user
    device, _ = _turn_on(user, clock)
    client = _log_in_with_password(user)
    client.post("/login/code/", {"code": "111111"})
    client.post("/login/code/", {"code": "222222"})  # refused without being checked

    too_soon = client.post("/login/code/", {"code": _code(device)})
    assert too_soon.status_code == 200
    assert "Too many wrong codes: try again in" in too_soon.content.decode()

    clock.shift(timedelta(seconds=2))
    assert client.post("/login/code/", {"code": _code(device)}).status_code == 302


def test_a_backup_code_logs_in_once(tenant_a: TenantWorld, clock: Any) -> None:
    user = tenant_a.members["admin"].user
    _, codes = _turn_on(user, clock)

    first = _log_in_with_password(user)
    assert first.post("/login/code/", {"code": codes[0].upper()}).status_code == 302
    assert first.get("/agents/").status_code == 200
    assert two_factor.backup_codes_left(user) == 9

    second = _log_in_with_password(user)
    again = second.post("/login/code/", {"code": codes[0]})
    assert again.status_code == 200
    assert second.get("/agents/").status_code == 302


def test_new_backup_codes_void_the_old_ones(tenant_a: TenantWorld, clock: Any) -> None:
    user = tenant_a.members["admin"].user
    device, old_codes = _turn_on(user, clock)
    client = _log_in_with_password(user)
    client.post("/login/code/", {"code": _code(device)})

    page = client.post("/account/two-factor/backup-codes/")

    new_codes = re.findall(r"<li>([a-z2-7]{8})</li>", page.content.decode())
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    second = _log_in_with_password(user)
    assert second.post("/login/code/", {"code": old_codes[1]}).status_code == 200
    clock.shift(timedelta(seconds=2))  # after a wrong code, the next must wait a second
    assert second.post("/login/code/", {"code": new_codes[1]}).status_code == 302


def test_an_invitation_log_in_still_asks_for_the_code(
    tenant_a: TenantWorld, tenant_b: TenantWorld, clock: Any
) -> None:
    user = tenant_a.members["editor"].user
    _turn_on(user, clock)
    _, token = Invitation.issue(tenant=tenant_b.tenant, email=user.email, role=Role.AUDITOR)
    client = Client()

    response = client.post(f"/invite/{token}/", {"password": PASSWORD})

    assert response.status_code == 302
    assert client.get("/agents/")["Location"].startswith("/login/code/")


def test_turning_it_off_needs_the_password(tenant_a: TenantWorld, clock: Any) -> None:
    user = tenant_a.members["editor"].user
    device, _ = _turn_on(user, clock)
    client = _log_in_with_password(user)
    client.post("/login/code/", {"code": _code(device)})

    client.post("/account/two-factor/off/", {"password": "not-my-password"})
    assert two_factor.is_enabled(user)
    client.post("/account/two-factor/off/", {"password": PASSWORD})
    assert not two_factor.is_enabled(user)
    assert two_factor.backup_codes_left(user) == 0
    assert client.get("/agents/").status_code == 200
    assert _log_in_with_password(user).get("/agents/").status_code == 200


# --- a tenant that requires it -------------------------------------------------------------


def _require(client: Client, tenant: Any, *, is_required: bool) -> Any:
    return client.post(
        "/settings/",
        {
            "name": tenant.name,
            "time_zone": tenant.time_zone,
            "max_concurrent_calls": tenant.max_concurrent_calls,
            **({"requires_two_factor": "on"} if is_required else {}),
        },
    )


def test_an_owner_with_two_factor_can_require_it(tenant_a: TenantWorld, clock: Any) -> None:
    owner = tenant_a.members["owner"].user
    device, _ = _turn_on(owner, clock)
    client = _log_in_with_password(owner)
    client.post("/login/code/", {"code": _code(device)})

    assert _require(client, tenant_a.tenant, is_required=True).status_code == 302
    tenant_a.tenant.refresh_from_db()
    assert tenant_a.tenant.requires_two_factor


def test_an_owner_without_two_factor_is_told_to_turn_it_on_first(tenant_a: TenantWorld) -> None:
    response = _require(tenant_a.client_for("owner"), tenant_a.tenant, is_required=True)
    assert response.status_code == 200
    assert "your own account first" in " ".join(
        response.context["form"].errors["requires_two_factor"]
    )
    tenant_a.tenant.refresh_from_db()
    assert not tenant_a.tenant.requires_two_factor


def test_an_admin_cannot_change_the_requirement(tenant_a: TenantWorld, clock: Any) -> None:
    admin = tenant_a.members["admin"].user
    device, _ = _turn_on(admin, clock)
    client = _log_in_with_password(admin)
    client.post("/login/code/", {"code": _code(device)})
    assert b'name="requires_two_factor"' in client.get("/settings/").content

    assert _require(client, tenant_a.tenant, is_required=True).status_code == 302
    tenant_a.tenant.refresh_from_db()
    assert not tenant_a.tenant.requires_two_factor


def test_members_without_it_are_sent_to_set_it_up(
    tenant_a: TenantWorld, tenant_b: TenantWorld, clock: Any
) -> None:
    tenant_a.tenant.requires_two_factor = True
    tenant_a.tenant.save()
    client = tenant_a.client_for("auditor")

    for path in ["/agents/", "/calls/", "/usage/"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == "/account/two-factor/"
    page = client.get("/account/two-factor/")
    assert "Acme Dental requires two-factor log-in" in page.content.decode()
    # Another tenant's members are not concerned.
    assert tenant_b.client_for("auditor").get("/agents/").status_code == 200

    device = TOTPDevice.objects.get(user=tenant_a.members["auditor"].user)
    client.post("/account/two-factor/", {"code": _code(device)})
    assert client.get("/calls/").status_code == 200


def test_a_required_two_factor_cannot_be_turned_off(tenant_a: TenantWorld, clock: Any) -> None:
    user = tenant_a.members["auditor"].user
    device, _ = _turn_on(user, clock)
    tenant_a.tenant.requires_two_factor = True
    tenant_a.tenant.save()
    client = _log_in_with_password(user)
    client.post("/login/code/", {"code": _code(device)})

    response = client.post("/account/two-factor/off/", {"password": PASSWORD}, follow=True)

    assert "stays on: Acme Dental requires it" in response.content.decode()
    assert two_factor.is_enabled(user)
