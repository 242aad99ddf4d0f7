"""Field-level encryption at rest (Fernet), with key rotation.

``FIELD_ENCRYPTION_KEYS`` is a list of Fernet keys, newest first: values are always
encrypted with the newest and can be read with any, so a new key can be put in front
and ``manage.py rotate_encryption_keys`` re-encrypts every stored value under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import connection, models, transaction

from foundation.checks import check_fernet_keys


class DecryptionError(Exception):
    """A stored value cannot be read with any configured key."""


@cache
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    # Settings checked the keys at start-up; checked again for values set since (tests).
    check_fernet_keys(keys)
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise DecryptionError(
            "An encrypted value cannot be read with the configured FIELD_ENCRYPTION_KEYS."
        ) from error


class EncryptedTextField(models.TextField):
    """A text column stored as a Fernet token; Python code only sees plaintext.

    Not searchable: each encryption of the same value yields a different token.
    """

    description = "Text encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))


def encrypted_fields() -> Iterator[tuple[type[models.Model], list[str]]]:
    for model in apps.get_models():
        names = [
            field.attname
            for field in model._meta.concrete_fields
            if isinstance(field, EncryptedTextField)
        ]
        if names:
            yield model, names


def rotate_all(batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt every stored value under the newest key; returns rows touched per model.

    Works on the raw column values with ``MultiFernet.rotate`` so plaintext never leaves
    the cryptography library, and one transaction per batch keeps locks short.
    """
    multi = fernet()
    counts: dict[str, int] = {}
    for model, names in encrypted_fields():
        pks = list(model._default_manager.order_by("pk").values_list("pk", flat=True))
        counts[model._meta.label] = 0
        for start in range(0, len(pks), batch_size):
            with transaction.atomic():
                for pk in pks[start : start + batch_size]:
                    counts[model._meta.label] += _rotate_row(model, pk, names, multi)
    return counts


def _rotate_row(model: type[models.Model], pk: Any, names: list[str], multi: MultiFernet) -> int:
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk_column = quote(str(model._meta.pk.column))
    # encrypted_fields() listed names in concrete-field order: keep that order here.
    columns = [
        quote(str(field.column)) for field in model._meta.concrete_fields if field.attname in names
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE {pk_column} = %s",  # noqa: S608
            [pk],
        )
        row = cursor.fetchone()
        if row is None:
            return 0
        rotated = [multi.rotate(value.encode()).decode() if value else value for value in row]
        assignments = ", ".join(f"{column} = %s" for column in columns)
        cursor.execute(
            f"UPDATE {table} SET {assignments} WHERE {pk_column} = %s",  # noqa: S608
            [*rotated, pk],
        )
    return 1
