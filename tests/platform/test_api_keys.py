"""Tenant secret keys: shown once, stored as a digest, revocable, last use recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from tenancy.models import ApiKey, hash_secret
from tests.factories import TenantFactory


@pytest.mark.django_db
def test_only_a_digest_is_stored() -> None:
    key, secret = ApiKey.issue(TenantFactory(), "backend")
    assert secret.startswith("sk_") and len(secret) > 40
    assert key.prefix == secret[:11]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenancy_apikey")
        dump = repr(cursor.fetchall())
    assert secret not in dump
    assert secret[11:] not in dump
    assert hash_secret(secret) in dump


@pytest.mark.django_db
def test_authenticate_accepts_only_active_known_keys() -> None:
    tenant = TenantFactory()
    key, secret = ApiKey.issue(tenant, "backend")
    assert ApiKey.authenticate(secret) == key
    assert ApiKey.authenticate(secret + "x") is None
    assert ApiKey.authenticate("sk_unknown") is None
    assert ApiKey.authenticate("") is None
    assert ApiKey.authenticate(secret.replace("sk_", "pk_", 1)) is None
    key.revoke()
    assert ApiKey.authenticate(secret) is None


@pytest.mark.django_db
def test_last_used_is_recorded_at_most_once_a_minute() -> None:
    key, secret = ApiKey.issue(TenantFactory(), "backend")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        ApiKey.authenticate(secret)
    key.refresh_from_db()
    assert key.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        ApiKey.authenticate(secret)
    key.refresh_from_db()
    assert key.last_used_at == start
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        ApiKey.authenticate(secret)
    key.refresh_from_db()
    assert key.last_used_at == start + timedelta(minutes=2)
