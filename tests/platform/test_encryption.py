"""Secrets at rest: unreadable in a raw dump, readable after key rotation."""

from __future__ import annotations

import io
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from foundation.encryption import DecryptionError, encrypt
from tenancy.models import ProviderCredential
from tests.factories import CredentialFactory, ToolFactory
from tools.models import ToolDefinition

PLAINTEXT = "sk-proj-very-secret-value-0042"


def _raw(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return str(cursor.fetchone()[0])


def _dump() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenancy_providercredential")
        rows = cursor.fetchall()
        cursor.execute("SELECT * FROM tools_tooldefinition")
        rows += cursor.fetchall()
    return repr(rows)


@pytest.mark.django_db
def test_secrets_are_not_readable_in_a_raw_database_dump() -> None:
    credential = CredentialFactory(api_key=PLAINTEXT)
    tool = ToolFactory(
        webhook_headers='{"X-Api-Key": "hdr-secret-77"}', mcp_auth_header="Bearer mcp-secret-99"
    )
    dump = _dump()
    for secret in (PLAINTEXT, "hdr-secret-77", "mcp-secret-99", tool.signing_secret):
        assert secret not in dump
    assert ProviderCredential.objects.get(pk=credential.pk).api_key == PLAINTEXT
    assert credential.key_hint == "0042"
    assert ToolDefinition.objects.get(pk=tool.pk).headers == {"X-Api-Key": "hdr-secret-77"}


@pytest.mark.django_db
def test_rotation_keeps_old_values_readable_and_moves_them_to_the_new_key(settings) -> None:  # type: ignore[no-untyped-def]
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    credential = CredentialFactory(api_key=PLAINTEXT)
    tool = ToolFactory()
    signing_secret = tool.signing_secret
    before = _raw("tenancy_providercredential", "api_key", credential.pk)

    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    # Before rotation the value is still under the old key, and still readable.
    assert ProviderCredential.objects.get(pk=credential.pk).api_key == PLAINTEXT
    assert Fernet(old_key.encode()).decrypt(before.encode()).decode() == PLAINTEXT

    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115

    after = _raw("tenancy_providercredential", "api_key", credential.pk)
    assert after != before
    assert Fernet(new_key.encode()).decrypt(after.encode()).decode() == PLAINTEXT
    # The old key can be dropped now: everything reads with the new key alone.
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert ProviderCredential.objects.get(pk=credential.pk).api_key == PLAINTEXT
    assert ToolDefinition.objects.get(pk=tool.pk).signing_secret == signing_secret


@pytest.mark.django_db
def test_a_value_under_an_unknown_key_is_a_clear_error(settings) -> None:  # type: ignore[no-untyped-def]
    credential = CredentialFactory(api_key=PLAINTEXT)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(DecryptionError, match="cannot be read with the configured"):
        ProviderCredential.objects.get(pk=credential.pk)


def test_the_system_check_names_a_bad_key_set_after_start_up(settings: Any) -> None:
    good = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [good, "not-a-key-at-all"]

    with pytest.raises(SystemCheckError) as failed:
        call_command("check", stdout=io.StringIO())

    assert "koe.E001" in str(failed.value)
    assert "FIELD_ENCRYPTION_KEYS: key 2 is not a Fernet key" in str(failed.value)
    assert "not-a-key-at-all" not in str(failed.value)
    assert good not in str(failed.value)


def test_encrypting_with_a_bad_key_says_which_one(settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-key-at-all"]

    with pytest.raises(ImproperlyConfigured, match="key 1 is not a Fernet key"):
        encrypt(PLAINTEXT)
