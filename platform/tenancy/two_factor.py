"""Two-factor log-in by django-otp: an authenticator app (TOTP) and single-use backup codes.

A user has two-factor on once an authenticator app is confirmed with a code from it. Then
every session gives a code after the password; a backup code replaces the app's code once.
A tenant may require two-factor of its members (``Tenant.requires_two_factor``).
"""

from __future__ import annotations

from base64 import b32encode
from typing import Any

import django_otp
from django.db import transaction
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenancy.actions import TenancyError
from tenancy.models import Tenant

APP_DEVICE_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"
BACKUP_CODE_COUNT = 10


class TwoFactorError(TenancyError):
    """A code that was refused, or a change two-factor does not allow."""


def is_enabled(user: Any) -> bool:
    """Whether the user has a confirmed authenticator app (backup codes alone are not)."""
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()


def tenants_requiring(user: Any) -> list[Tenant]:
    return list(
        Tenant.objects.filter(memberships__user=user, requires_two_factor=True).order_by("name")
    )


def app_to_confirm(user: Any) -> TOTPDevice:
    """The app being set up: the same secret on every visit until a code confirms it."""
    device = TOTPDevice.objects.devices_for_user(user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=APP_DEVICE_NAME, confirmed=False)
    return device


def secret_text(device: TOTPDevice) -> str:
    """The app's secret as people type it into an authenticator app: base32, in fours."""
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[start : start + 4] for start in range(0, len(secret), 4))


def confirm_app(device: TOTPDevice, code: str) -> list[str]:
    """Confirm the app with a code from it; returns the first backup codes."""
    _check_allowed(device)
    # Not in the transaction below: a wrong code's throttling must be kept.
    if not device.verify_token(_digits(code)):
        raise TwoFactorError(
            "This code does not match: check the app's clock, and type the code it shows now.",
            field="code",
        )
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        return new_backup_codes(device.user)


def new_backup_codes(user: Any) -> list[str]:
    """Fresh backup codes, replacing any left: they are shown once and stored only here."""
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(
            user=user, name=BACKUP_DEVICE_NAME, defaults={"confirmed": True}
        )
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def backup_codes_left(user: Any) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def verify_code(user: Any, code: str) -> Device:
    """The device that accepts a log-in code: six digits are the app's, else a backup code.

    Each device is throttled by django-otp: after a wrong code the next try must wait,
    twice as long after each further one.
    """
    code = "".join(code.split()).lower()
    if code.isdigit():
        device: Device | None = TOTPDevice.objects.devices_for_user(user, confirmed=True).first()
    else:
        device = StaticDevice.objects.devices_for_user(user, confirmed=True).first()
    if device is None:
        raise TwoFactorError(
            "This is not a code from your app or one of your backup codes.", field="code"
        )
    _check_allowed(device)
    verified = django_otp.verify_token(user, device.persistent_id, code)
    if verified is None:
        raise TwoFactorError(
            "This code is wrong or was already used. The app's code changes every 30 seconds.",
            field="code",
        )
    return verified


def turn_off(user: Any) -> None:
    """Remove the user's app and backup codes, unless one of their tenants requires them."""
    requiring = tenants_requiring(user)
    if requiring:
        names = ", ".join(tenant.name for tenant in requiring)
        raise TwoFactorError(f"Two-factor log-in stays on: {names} requires it.")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()


def _check_allowed(device: Device) -> None:
    is_allowed, details = device.verify_is_allowed()
    if is_allowed:
        return
    locked_until = (details or {}).get("locked_until")
    seconds = int((locked_until - timezone.now()).total_seconds()) + 1 if locked_until else 1
    raise TwoFactorError(
        f"Too many wrong codes: try again in {max(seconds, 1)} seconds.", field="code"
    )


def _digits(code: str) -> str:
    return "".join(code.split())
